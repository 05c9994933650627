//! Templates as versioned data: admins add versions, jobs record the version they ran with.

use serde_json::{Value, json};
use vitalgrid_server::accounts::Role;

use crate::support::{Backend, on_every_backend, small_vitals_csv, spawn_app};

on_every_backend!(
    admin_adds_a_template_version_and_new_jobs_run_with_it,
    invalid_template_versions_and_non_admins_are_refused,
);

async fn admin_adds_a_template_version_and_new_jobs_run_with_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.user("root@example.org", Role::Admin).await;
    let clinician = app.user("ana@example.org", Role::Clinician).await;
    let (file_id, first_job) = app
        .upload_and_submit(
            &clinician,
            "PT-001",
            "a.csv",
            small_vitals_csv(20).as_bytes(),
        )
        .await;

    let templates: Value = app.get_json(&admin, "/api/templates").await;
    let vitals = templates
        .as_array()
        .and_then(|list| {
            list.iter()
                .find(|t| t["id"] == "bedside-vitals" && t["version"] == 1)
        })
        .cloned()
        .expect("built-in vitals template, version 1");

    let mut stricter = vitals.clone();
    stricter["signals"][0]["min"] = json!(30.0);
    let response = admin
        .post(app.url("/api/templates/bedside-vitals/versions"))
        .json(&stricter)
        .send()
        .await
        .expect("add");
    assert_eq!(response.status(), 201);
    let stored: Value = response.json().await.expect("json");
    assert_eq!(stored["version"], 2);
    assert_eq!(stored["signals"][0]["min"], 30.0);

    let first: Value = app
        .get_json(&clinician, &format!("/api/jobs/{first_job}"))
        .await;
    assert_eq!(
        first["template_version"], 1,
        "an existing job keeps the version it was submitted with"
    );
    let second: Value = clinician
        .post(app.url(&format!("/api/files/{file_id}/jobs")))
        .json(&json!({}))
        .send()
        .await
        .expect("submit")
        .json()
        .await
        .expect("json");
    assert_eq!(second["template_id"], "bedside-vitals");
    assert_eq!(second["template_version"], 2);
}

async fn invalid_template_versions_and_non_admins_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.user("root@example.org", Role::Admin).await;
    let clinician = app.user("ana@example.org", Role::Clinician).await;
    let templates: Value = app.get_json(&admin, "/api/templates").await;
    let vitals = templates
        .as_array()
        .and_then(|l| l.iter().find(|t| t["id"] == "bedside-vitals"))
        .cloned()
        .expect("vitals");

    let mut impossible = vitals.clone();
    impossible["signals"][0]["min"] = json!(400.0);
    let response = admin
        .post(app.url("/api/templates/bedside-vitals/versions"))
        .json(&impossible)
        .send()
        .await
        .expect("add");
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_template");

    let unknown = admin
        .post(app.url("/api/templates/no-such-template/versions"))
        .json(&vitals)
        .send()
        .await
        .expect("add");
    assert_eq!(unknown.status(), 404);
    let forbidden = clinician
        .post(app.url("/api/templates/bedside-vitals/versions"))
        .json(&vitals)
        .send()
        .await
        .expect("add");
    assert_eq!(forbidden.status(), 403);
    assert_eq!(
        clinician
            .get(app.url("/api/templates"))
            .send()
            .await
            .expect("list")
            .status(),
        403
    );
}
