//! The server process killed with SIGKILL mid-run and restarted on the same database: leases
//! expire, workers reconnect, and nothing is lost, duplicated or damaged.

use std::time::Duration;

use serde_json::Value;
use vitalgrid_native_worker::Fault;
use vitalgrid_server::app::connect_database;

use crate::support::{
    Backend, ServerProcess, TestDatabase, Worker, acceptances_and_leases, assert_all_done,
    assert_correct_analysis, create_clinician, file_fingerprints, login, on_every_backend,
    vitals_csv,
};

const JOBS: u64 = 20;

on_every_backend!(server_killed_mid_run_and_restarted_loses_and_duplicates_nothing);

async fn server_killed_mid_run_and_restarted_loses_and_duplicates_nothing(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let db = connect_database(&database.url)
        .await
        .expect("database opens and migrates");
    create_clinician(&db, "ana@example.org").await;
    let log = database.dir.path().join("server.log");
    let server = ServerProcess::start(&database.url, "127.0.0.1:0", &log).await;
    let api = login(&server.base, "ana@example.org").await;

    let mut job_ids = Vec::new();
    let mut uploads = Vec::new();
    for seed in 1..=JOBS {
        // Two tasks each at the binary's default of 3 600 rows per task.
        let csv = vitals_csv(200 + seed, 4_000);
        let (_, job_id) = api
            .upload_and_submit(&format!("bed-{seed}.csv"), csv.as_bytes())
            .await;
        job_ids.push(job_id);
        uploads.push(csv);
    }
    let files_before: Value = api.get("/api/files").await;
    let fingerprints_before = file_fingerprints(&db).await;
    for ((_, _, sha), csv) in fingerprints_before.iter().zip(&uploads) {
        assert_eq!(
            *sha,
            vitalgrid_worker::protocol::sha256_hex(csv.as_bytes()),
            "stored as uploaded"
        );
    }

    // Slow enough that the kill lands mid-run.
    let workers: Vec<Worker> = (0..4)
        .map(|n| {
            Worker::spawn(
                &server.ws_url,
                &format!("ward-pc-{n:02}"),
                2,
                Fault::Slow(Duration::from_millis(150)),
            )
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let done_at_kill = loop {
        let done = api.count_done(&job_ids).await;
        if done >= 2 || tokio::time::Instant::now() > deadline {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let listen = server.listen.clone();
    server.kill().await;
    assert!(
        (2..JOBS as usize).contains(&done_at_kill),
        "the kill landed mid-run ({done_at_kill} of {JOBS} jobs done)"
    );

    // Same address, so the workers' reconnection loop finds it again.
    let server = ServerProcess::start(&database.url, &listen, &log).await;
    let api = api.at(&server.base);
    let jobs = api.wait_for_jobs(&job_ids, Duration::from_secs(90)).await;
    for worker in workers {
        worker.stop().await;
    }
    assert_all_done(&jobs);
    for job_id in &job_ids {
        assert_correct_analysis(&db, &api, *job_id).await;
    }
    let (accepted, _) = acceptances_and_leases(&db, &job_ids).await;
    assert!(
        accepted.iter().all(|(_, n)| *n == 1),
        "each task applied exactly once: {accepted:?}"
    );

    let strip_jobs = |files: &Value| -> Vec<Value> {
        files
            .as_array()
            .expect("file list")
            .iter()
            .map(|f| {
                let mut f = f.clone();
                if let Some(fields) = f.as_object_mut() {
                    fields.remove("latest_job");
                }
                f
            })
            .collect()
    };
    let files_after: Value = api.get("/api/files").await;
    assert_eq!(
        strip_jobs(&files_after),
        strip_jobs(&files_before),
        "uploads unchanged by the crash"
    );
    assert_eq!(
        file_fingerprints(&db).await,
        fingerprints_before,
        "file contents unchanged by the crash"
    );
    server.kill().await;
}
