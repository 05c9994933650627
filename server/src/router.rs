//! `build_router`: every route of the server, used by `main` and by every test; `without_nagle`:
//! the listener they serve it on.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};
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

/// The listener to serve the router on: every accepted socket sends small writes at once
/// (`TCP_NODELAY`). A worker's ACK and result, or the server's task packet after a result, are
/// small frames written back to back; with Nagle's algorithm the second waits for the peer's
/// delayed ACK of the first, up to 40 ms on Linux, which would dwarf the scheduler's own work.
pub fn without_nagle(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_nodelay)
}

fn set_nodelay(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "TCP_NODELAY could not be set on an accepted socket");
    }
}
