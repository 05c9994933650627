//! Two server processes on one MariaDB, workers split between them: every task is claimed by one
//! process only and applied once.

use std::time::Duration;

use vitalgrid_native_worker::Fault;
use vitalgrid_server::app::connect_database;

use crate::support::{
    Backend, ServerProcess, TestDatabase, Worker, acceptances_and_leases, assert_all_done,
    assert_correct_analysis, create_clinician, login, mariadb_url, vitals_csv,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_mariadb_apply_each_task_once() {
    if mariadb_url().is_none() {
        return;
    }
    let database = TestDatabase::new(Backend::MariaDb).await;
    let db = connect_database(&database.url)
        .await
        .expect("database opens and migrates");
    create_clinician(&db, "ana@example.org").await;
    let first = ServerProcess::start(
        &database.url,
        "127.0.0.1:0",
        &database.dir.path().join("first.log"),
    )
    .await;
    let second = ServerProcess::start(
        &database.url,
        "127.0.0.1:0",
        &database.dir.path().join("second.log"),
    )
    .await;
    let api = login(&first.base, "ana@example.org").await;
    let api_second = login(&second.base, "ana@example.org").await;

    let mut job_ids = Vec::new();
    for seed in 1..=50 {
        // Jobs go in through both servers, as behind a load balancer.
        let through = if seed % 2 == 0 { &api } else { &api_second };
        let (_, job_id) = through
            .upload_and_submit(
                &format!("icu-{seed}.csv"),
                vitals_csv(300 + seed, 4_000).as_bytes(),
            )
            .await;
        job_ids.push(job_id);
    }
    let on_first: Vec<Worker> = (0..3)
        .map(|n| Worker::spawn(&first.ws_url, &format!("left-pc-{n:02}"), 2, Fault::None))
        .collect();
    let on_second: Vec<Worker> = (0..3)
        .map(|n| Worker::spawn(&second.ws_url, &format!("right-pc-{n:02}"), 2, Fault::None))
        .collect();

    let jobs = api.wait_for_jobs(&job_ids, Duration::from_secs(120)).await;
    let mut done_first = 0;
    for worker in on_first {
        done_first += worker.stop().await.tasks_done;
    }
    let mut done_second = 0;
    for worker in on_second {
        done_second += worker.stop().await.tasks_done;
    }
    assert_all_done(&jobs);
    assert!(
        done_first > 0 && done_second > 0,
        "both servers handed out work ({done_first} / {done_second} results)"
    );
    for job_id in &job_ids {
        assert_correct_analysis(&db, &api, *job_id).await;
    }
    let (accepted, _) = acceptances_and_leases(&db, &job_ids).await;
    assert!(
        accepted.iter().all(|(_, n)| *n == 1),
        "each task applied exactly once: {accepted:?}"
    );
    first.kill().await;
    second.kill().await;
}
