//! Uploading, refusing bad files, ownership, deleting, and the API description.

use serde_json::{Value, json};
use vitalgrid_server::accounts::Role;

use crate::support::{Backend, on_every_backend, small_vitals_csv, spawn_app};

on_every_backend!(
    vitals_upload_is_listed_with_its_signals_and_ignored_columns,
    bad_files_are_refused_with_the_reason_and_nothing_is_stored,
    another_clinicians_file_job_and_result_are_not_found,
    deleting_a_file_removes_it_and_its_jobs,
    openapi_document_describes_every_api_route,
);

async fn vitals_upload_is_listed_with_its_signals_and_ignored_columns(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.user("ana@example.org", Role::Clinician).await;
    let csv =
        "timestamp,hr,spo2,bed_id\n2026-01-05T08:00:00Z,72,98,4\n2026-01-05T08:00:01Z,73,97,4\n";
    let response = app
        .upload(&client, "PT-001", "night.csv", csv.as_bytes())
        .await;
    assert_eq!(response.status(), 201);
    let file: Value = response.json().await.expect("json");
    assert_eq!(file["kind"], "vitals");
    assert_eq!(file["rows"], 2);
    assert_eq!(file["signals"], json!(["hr", "spo2"]));
    assert_eq!(file["ignored_columns"], json!(["bed_id"]));

    let list: Value = app.get_json(&client, "/api/files").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["patient_ref"], "PT-001");
    assert_eq!(list[0]["latest_job"], Value::Null);
}

async fn bad_files_are_refused_with_the_reason_and_nothing_is_stored(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.user("ana@example.org", Role::Clinician).await;
    let cases: [(&[u8], &str); 4] = [
        (b"when,hr\n1,70\n", "no time column"),
        (b"time_s,foo\n0,1\n", "no known signal column"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "not text"),
        (b"time_s,hr\n0,70\n1,fast\n", "line 3"),
    ];
    for (content, reason) in cases {
        let response = app.upload(&client, "PT-001", "bad.csv", content).await;
        assert_eq!(response.status(), 422, "{reason}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "invalid_file");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(reason),
            "message `{message}` should mention `{reason}`"
        );
    }
    let missing_ref = app
        .upload(&client, "  ", "ok.csv", small_vitals_csv(5).as_bytes())
        .await;
    assert_eq!(missing_ref.status(), 422);

    let list: Value = app.get_json(&client, "/api/files").await;
    assert_eq!(list, json!([]), "refused uploads leave nothing behind");
}

async fn another_clinicians_file_job_and_result_are_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let ana = app.user("ana@example.org", Role::Clinician).await;
    let bob = app.user("bob@example.org", Role::Clinician).await;
    let (file_id, job_id) = app
        .upload_and_submit(&ana, "PT-001", "a.csv", small_vitals_csv(50).as_bytes())
        .await;

    let (worker_stop, worker) = crate::support::spawn_native_worker(&app, 2, Default::default());
    let job = app
        .wait_for_job(&ana, job_id, std::time::Duration::from_secs(30))
        .await;
    assert_eq!(job["status"], "done", "{job}");
    let _ = worker_stop.send(());
    let _ = worker.await;

    for path in [
        format!("/api/jobs/{job_id}"),
        format!("/api/jobs/{job_id}/result"),
    ] {
        let response = bob.get(app.url(&path)).send().await.expect("request");
        assert_eq!(response.status(), 404, "{path}");
    }
    assert_eq!(
        bob.delete(app.url(&format!("/api/jobs/{job_id}/result")))
            .send()
            .await
            .expect("req")
            .status(),
        404
    );
    assert_eq!(
        bob.delete(app.url(&format!("/api/files/{file_id}")))
            .send()
            .await
            .expect("req")
            .status(),
        404
    );
    let submit = bob
        .post(app.url(&format!("/api/files/{file_id}/jobs")))
        .json(&json!({}))
        .send()
        .await
        .expect("req");
    assert_eq!(submit.status(), 404);
    let bobs_files: Value = app.get_json(&bob, "/api/files").await;
    assert_eq!(bobs_files, json!([]));

    // Ana still has everything, and deletes her result once: a second delete finds nothing.
    let result_url = app.url(&format!("/api/jobs/{job_id}/result"));
    let status_of = |request: reqwest::RequestBuilder| async move {
        request.send().await.expect("req").status()
    };
    assert_eq!(status_of(ana.get(result_url.clone())).await, 200);
    assert_eq!(status_of(ana.delete(result_url.clone())).await, 204);
    assert_eq!(status_of(ana.delete(result_url.clone())).await, 404);
    assert_eq!(status_of(ana.get(result_url)).await, 404);
    assert_eq!(
        status_of(ana.get(app.url(&format!("/api/jobs/{job_id}")))).await,
        200,
        "the job stays, without its result"
    );
}

async fn deleting_a_file_removes_it_and_its_jobs(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.user("ana@example.org", Role::Clinician).await;
    let (file_id, job_id) = app
        .upload_and_submit(&client, "PT-001", "a.csv", small_vitals_csv(30).as_bytes())
        .await;
    let response = client
        .delete(app.url(&format!("/api/files/{file_id}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 204);
    assert_eq!(
        client
            .get(app.url(&format!("/api/jobs/{job_id}")))
            .send()
            .await
            .expect("req")
            .status(),
        404
    );
    assert_eq!(
        client
            .delete(app.url(&format!("/api/files/{file_id}")))
            .send()
            .await
            .expect("req")
            .status(),
        404
    );
    let list: Value = app.get_json(&client, "/api/files").await;
    assert_eq!(list, json!([]));
}

async fn openapi_document_describes_every_api_route(backend: Backend) {
    let app = spawn_app(backend).await;
    let document: Value = reqwest::get(app.url("/api/openapi.json"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(document["openapi"], "3.1.0");
    let routes = [
        ("/api/auth/login", "post"),
        ("/api/auth/logout", "post"),
        ("/api/me", "get"),
        ("/api/users", "get"),
        ("/api/users", "post"),
        ("/api/files", "get"),
        ("/api/files", "post"),
        ("/api/files/{id}", "delete"),
        ("/api/files/{id}/jobs", "post"),
        ("/api/jobs/{id}", "get"),
        ("/api/jobs/{id}/result", "get"),
        ("/api/jobs/{id}/result", "delete"),
        ("/api/templates", "get"),
        ("/api/templates/{id}/versions", "post"),
        ("/api/admin/workers", "get"),
        ("/api/admin/jobs", "get"),
        ("/api/health", "get"),
        ("/api/openapi.json", "get"),
        ("/ws/worker", "get"),
    ];
    for (path, method) in routes {
        assert!(
            document["paths"][path][method].is_object(),
            "{method} {path} is not described"
        );
    }
}
