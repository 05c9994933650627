//! Logging in, roles, and admin-made accounts.

use serde_json::{Value, json};
use vitalgrid_server::accounts::Role;

use crate::support::{Backend, on_every_backend, spawn_app};

on_every_backend!(
    login_sets_a_cookie_and_me_returns_the_account,
    wrong_password_is_refused_with_the_error_shape,
    admin_creates_clinicians_and_refuses_duplicates_and_weak_passwords,
    clinicians_cannot_manage_accounts_and_strangers_cannot_see_anything,
);

async fn login_sets_a_cookie_and_me_returns_the_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.user("ana@example.org", Role::Clinician).await;
    let me: Value = app.get_json(&client, "/api/me").await;
    assert_eq!(me["email"], "ana@example.org");
    assert_eq!(me["role"], "clinician");

    let response = client
        .post(app.url("/api/auth/logout"))
        .send()
        .await
        .expect("logout");
    assert_eq!(response.status(), 204);
    assert_eq!(
        client
            .get(app.url("/api/me"))
            .send()
            .await
            .expect("me")
            .status(),
        401
    );
}

async fn wrong_password_is_refused_with_the_error_shape(backend: Backend) {
    let app = spawn_app(backend).await;
    app.user("ana@example.org", Role::Clinician).await;
    let response = reqwest::Client::new()
        .post(app.url("/api/auth/login"))
        .json(&json!({ "email": "ana@example.org", "password": "not the password" }))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("set-cookie").is_none());
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "bad_credentials");

    let malformed = reqwest::Client::new()
        .post(app.url("/api/auth/login"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("login");
    assert_eq!(malformed.status(), 400);
    let body: Value = malformed.json().await.expect("json error body");
    assert_eq!(body["error"]["code"], "bad_request");
}

async fn admin_creates_clinicians_and_refuses_duplicates_and_weak_passwords(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.user("root@example.org", Role::Admin).await;
    let create = |body: Value| admin.post(app.url("/api/users")).json(&body).send();

    let response = create(
        json!({ "email": "Bea@Example.org", "password": "sufficiently long", "role": "clinician" }),
    )
    .await
    .expect("create");
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    assert_eq!(created["email"], "bea@example.org");
    assert!(created.get("password_hash").is_none());

    let duplicate = create(
        json!({ "email": "bea@example.org", "password": "sufficiently long", "role": "clinician" }),
    )
    .await
    .expect("create");
    assert_eq!(duplicate.status(), 409);
    let weak =
        create(json!({ "email": "cy@example.org", "password": "short", "role": "clinician" }))
            .await
            .expect("create");
    assert_eq!(weak.status(), 422);
    let unknown_role = create(
        json!({ "email": "cy@example.org", "password": "sufficiently long", "role": "volunteer" }),
    )
    .await
    .expect("create");
    assert_eq!(unknown_role.status(), 422);

    let list: Value = app.get_json(&admin, "/api/users").await;
    let emails: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|u| u["email"].as_str())
        .collect();
    assert_eq!(emails, vec!["root@example.org", "bea@example.org"]);
}

async fn clinicians_cannot_manage_accounts_and_strangers_cannot_see_anything(backend: Backend) {
    let app = spawn_app(backend).await;
    let clinician = app.user("ana@example.org", Role::Clinician).await;
    let response = clinician
        .post(app.url("/api/users"))
        .json(&json!({ "email": "evil@example.org", "password": "sufficiently long", "role": "admin" }))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 403);
    assert_eq!(
        clinician
            .get(app.url("/api/admin/workers"))
            .send()
            .await
            .expect("workers")
            .status(),
        403
    );

    let stranger = reqwest::Client::new();
    for path in ["/api/files", "/api/users", "/api/jobs/1", "/api/admin/jobs"] {
        assert_eq!(
            stranger
                .get(app.url(path))
                .send()
                .await
                .expect("request")
                .status(),
            401,
            "{path}"
        );
    }
    let missing = stranger
        .get(app.url("/api/no-such-route"))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("json 404");
    assert_eq!(body["error"]["code"], "not_found");
}
