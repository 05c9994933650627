//! `GET /api/openapi.json`: the OpenAPI 3.1 description of the public API. Written by hand next to
//! the router; a test checks that every API route of the router is described here.

use axum::Json;
use serde_json::{Value, json};

pub async fn document() -> Json<Value> {
    Json(openapi())
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok_json(description: &str, schema: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

fn ok_list(description: &str, schema: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "type": "array", "items": { "$ref": format!("#/components/schemas/{schema}") } } } } })
}

fn id_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "integer", "format": "int64" } })
}

pub fn openapi() -> Value {
    let unauthenticated = error_response("Not signed in");
    let forbidden = error_response("Signed in with another role");
    let not_found = error_response("Not found, or not yours");
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "VitalGrid API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Clinicians upload bedside vitals and ECG recordings and read their analyses; admins manage accounts and watch workers. Authentication is a session cookie (`vg_session`, HttpOnly, SameSite=Strict) set by login. Every error is `{\"error\": {\"code\", \"message\"}}`. Volunteers connect to the WebSocket `/ws/worker` (see docs/protocol.md)."
        },
        "components": {
            "securitySchemes": { "session": { "type": "apiKey", "in": "cookie", "name": "vg_session" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } },
                "Account": { "type": "object", "required": ["id", "email", "role", "created_at"], "properties": { "id": { "type": "integer" }, "email": { "type": "string" }, "role": { "enum": ["admin", "clinician"] }, "created_at": { "type": "integer", "description": "ms since the Unix epoch" } } },
                "Job": { "type": "object", "required": ["id", "file_id", "algorithm", "status", "tasks_total", "tasks_done", "created_at", "has_result"], "properties": { "id": { "type": "integer" }, "file_id": { "type": "integer" }, "algorithm": { "type": "string" }, "status": { "enum": ["queued", "running", "done", "failed"] }, "tasks_total": { "type": "integer" }, "tasks_done": { "type": "integer" }, "created_at": { "type": "integer" }, "finished_at": { "type": ["integer", "null"] }, "error": { "type": ["string", "null"] }, "has_result": { "type": "boolean" } } },
                "File": { "type": "object", "required": ["id", "patient_ref", "file_name", "kind", "size_bytes", "rows", "signals", "ignored_columns", "duration_s", "sample_rate_hz", "created_at"], "properties": { "id": { "type": "integer" }, "patient_ref": { "type": "string" }, "file_name": { "type": "string" }, "kind": { "enum": ["vitals", "ecg"] }, "size_bytes": { "type": "integer" }, "rows": { "type": "integer" }, "signals": { "type": "array", "items": { "type": "string" } }, "ignored_columns": { "type": "array", "items": { "type": "string" } }, "duration_s": { "type": "number" }, "sample_rate_hz": { "type": "number" }, "created_at": { "type": "integer" }, "latest_job": { "oneOf": [{ "$ref": "#/components/schemas/Job" }, { "type": "null" }] } } },
                "Result": { "type": "object", "required": ["job_id", "file_id", "patient_ref", "file_name", "kind", "analysis"], "properties": { "job_id": { "type": "integer" }, "file_id": { "type": "integer" }, "patient_ref": { "type": "string" }, "file_name": { "type": "string" }, "kind": { "enum": ["vitals", "ecg"] }, "analysis": { "type": "object", "description": "Per-signal summary (n, mean, sd, min, max, out_of_range, missing) and trend series (time_s, min, mean, max), plus data-quality counts" } } },
                "Worker": { "type": "object", "properties": { "id": { "type": "string" }, "agent": { "type": "string" }, "slots": { "type": "integer" }, "in_flight": { "type": "integer" }, "reserved": { "type": "integer" }, "tasks_done": { "type": "integer" }, "connected_at": { "type": "integer" } } },
                "Health": { "type": "object", "properties": { "status": { "type": "string" }, "database": { "enum": ["sqlite", "mysql", "postgres"] }, "workers": { "type": "integer" }, "queued_tasks": { "type": "integer" }, "leased_tasks": { "type": "integer" } } }
            }
        },
        "security": [{ "session": [] }],
        "paths": {
            "/api/auth/login": { "post": { "summary": "Log in; sets the session cookie", "security": [], "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["email", "password"], "properties": { "email": { "type": "string" }, "password": { "type": "string" } } } } } }, "responses": { "200": ok_json("Logged in", "Account"), "401": error_response("Wrong e-mail or password") } } },
            "/api/auth/logout": { "post": { "summary": "Log out; clears the session", "responses": { "204": { "description": "Logged out" } } } },
            "/api/me": { "get": { "summary": "The signed-in account", "responses": { "200": ok_json("The account", "Account"), "401": unauthenticated } } },
            "/api/users": {
                "get": { "summary": "List accounts (admin)", "responses": { "200": ok_list("Accounts", "Account"), "401": unauthenticated, "403": forbidden } },
                "post": { "summary": "Create an account (admin)", "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["email", "password", "role"], "properties": { "email": { "type": "string" }, "password": { "type": "string", "minLength": 10 }, "role": { "enum": ["admin", "clinician"] } } } } } }, "responses": { "201": ok_json("Created", "Account"), "409": error_response("The e-mail is taken"), "422": error_response("Invalid e-mail or weak password") } }
            },
            "/api/files": {
                "get": { "summary": "The clinician's files with their latest job", "responses": { "200": ok_list("Files", "File"), "401": unauthenticated, "403": forbidden } },
                "post": { "summary": "Upload a recording (CSV) for a patient", "requestBody": { "required": true, "content": { "multipart/form-data": { "schema": { "type": "object", "required": ["patient_ref", "file"], "properties": { "patient_ref": { "type": "string", "maxLength": 64 }, "file": { "type": "string", "format": "binary" } } } } } }, "responses": { "201": ok_json("Stored", "File"), "413": error_response("Too large"), "422": error_response("Not an acceptable recording; the message says why") } }
            },
            "/api/files/{id}": { "delete": { "summary": "Delete a file with its jobs and results", "parameters": [id_param("id")], "responses": { "204": { "description": "Deleted" }, "404": not_found } } },
            "/api/files/{id}/jobs": { "post": { "summary": "Submit a file for processing", "parameters": [id_param("id")], "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "properties": { "algorithm": { "type": "string", "description": "Omit for the default analysis of the file's kind" } } } } } }, "responses": { "201": ok_json("Queued", "Job"), "404": not_found, "422": error_response("Unknown algorithm") } } },
            "/api/jobs/{id}": { "get": { "summary": "A job's state and progress", "parameters": [id_param("id")], "responses": { "200": ok_json("The job", "Job"), "404": not_found } } },
            "/api/jobs/{id}/result": {
                "get": { "summary": "A finished job's analysis", "parameters": [id_param("id")], "responses": { "200": ok_json("The analysis", "Result"), "404": not_found } },
                "delete": { "summary": "Delete a job's analysis", "parameters": [id_param("id")], "responses": { "204": { "description": "Deleted" }, "404": not_found } }
            },
            "/api/templates": { "get": { "summary": "Every version of every template (admin)", "responses": { "200": { "description": "Templates: columns, plausible ranges, normal ranges, algorithms and their parameters" }, "403": forbidden } } },
            "/api/templates/{id}/versions": { "post": { "summary": "Add a new version of a template (admin); the version number is assigned", "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }], "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "description": "A whole template" } } } }, "responses": { "201": { "description": "The stored version" }, "404": not_found, "422": error_response("Invalid template") } } },
            "/api/admin/workers": { "get": { "summary": "Workers connected to this server (admin)", "responses": { "200": ok_list("Workers", "Worker"), "403": forbidden } } },
            "/api/admin/jobs": { "get": { "summary": "Recent jobs of all clinicians (admin)", "responses": { "200": { "description": "Jobs with owner_email and file_name" }, "403": forbidden } } },
            "/api/health": { "get": { "summary": "Liveness and queue depth", "security": [], "responses": { "200": ok_json("Healthy", "Health") } } },
            "/api/openapi.json": { "get": { "summary": "This document", "security": [], "responses": { "200": { "description": "OpenAPI 3.1" } } } },
            "/ws/worker": { "get": { "summary": "WebSocket for volunteer workers (protocol in docs/protocol.md)", "security": [], "responses": { "101": { "description": "Switching protocols" } } } }
        }
    })
}
