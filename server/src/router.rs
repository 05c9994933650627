//! `build_router`: every route of the server, used by `main` and by every test.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::error::AppError;
use crate::routes::{admin, auth, files, jobs, openapi, templates, users};
use crate::ws;

pub fn build_router(state: AppState) -> Router {
    let upload_limit = state.config.max_upload_bytes;
    let api = Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/me", get(auth::me))
        .route("/users", get(users::list).post(users::create))
        .route(
            "/files",
            get(files::list)
                .post(files::upload)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/files/{id}", delete(files::delete))
        .route("/files/{id}/jobs", post(files::submit_job))
        .route("/jobs/{id}", get(jobs::get))
        .route(
            "/jobs/{id}/result",
            get(jobs::result).delete(jobs::delete_result),
        )
        .route("/templates", get(templates::list))
        .route("/templates/{id}/versions", post(templates::add_version))
        .route("/admin/workers", get(admin::workers))
        .route("/admin/worker-records", get(admin::worker_records))
        .route("/admin/queues", get(admin::queues))
        .route("/admin/jobs/{id}/events", get(admin::job_events))
        .route("/admin/jobs", get(admin::jobs))
        .route("/health", get(admin::health))
        .route("/openapi.json", get(openapi::document))
        .fallback(|| async { AppError::NotFound("API route") });

    // The single-page app: real files as they are, any other path gets index.html so client-side
    // routes (/files, /volunteer, …) survive a reload.
    let web_dir = &state.config.web_dir;
    let spa = ServeDir::new(web_dir).fallback(ServeFile::new(web_dir.join("index.html")));

    Router::new()
        .nest("/api", api)
        .route("/ws/worker", get(ws::worker_socket))
        .fallback_service(spa)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
