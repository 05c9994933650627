//! Byzantine volunteers: results forged with a matching hash, which only replication can catch.

use std::time::Duration;

use serde_json::Value;
use vitalgrid_native_worker::Fault;
use vitalgrid_server::accounts::{Role, create_account};

use crate::support::{
    Backend, PASSWORD, Worker, acceptances_and_leases, assert_all_done, assert_correct_analysis,
    create_clinician, fault_scheduler, login, on_every_backend, spawn_app, vitals_csv,
};

on_every_backend!(forged_results_never_reach_an_analysis_and_forgers_lose_all_credibility);

async fn forged_results_never_reach_an_analysis_and_forgers_lose_all_credibility(backend: Backend) {
    let app = spawn_app(backend, fault_scheduler()).await;
    create_clinician(&app.state.db, "ana@example.org").await;
    create_account(&app.state.db, "root@example.org", PASSWORD, Role::Admin, 0)
        .await
        .expect("admin created");
    let api = login(&app.base, "ana@example.org").await;
    let admin = login(&app.base, "root@example.org").await;
    let mut job_ids = Vec::new();
    for seed in 1..=6 {
        let (_, job_id) = api
            .upload_and_submit(
                &format!("ward-{seed}.csv"),
                vitals_csv(100 + seed, 1_500).as_bytes(),
            )
            .await;
        job_ids.push(job_id);
    }

    // 10 workers, 2 of them (20 %) forgers.
    let forgers = ["forger-key-0", "forger-key-1"];
    let honest: Vec<String> = (0..8).map(|n| format!("honest-key-{n}")).collect();
    let mut workers = Vec::new();
    for key in forgers {
        workers.push((
            key.to_owned(),
            Worker::spawn(&app.ws_url, key, 1, Fault::Forge),
        ));
    }
    for key in &honest {
        workers.push((key.clone(), Worker::spawn(&app.ws_url, key, 1, Fault::None)));
    }

    let jobs = api.wait_for_jobs(&job_ids, Duration::from_secs(90)).await;
    let mut sent_results = std::collections::HashMap::new();
    for (key, worker) in workers {
        sent_results.insert(key, worker.stop().await.tasks_done);
    }
    assert_all_done(&jobs);
    for job_id in &job_ids {
        assert_correct_analysis(&app.state.db, &api, *job_id).await;
    }

    let records: Vec<Value> =
        serde_json::from_value(admin.get("/api/admin/worker-records").await).expect("records");
    let record = |key: &str| records.iter().find(|r| r["worker_key"] == key).cloned();
    for key in forgers {
        let Some(record) = record(key) else {
            panic!("the forger {key} has no record: {records:#?}")
        };
        assert_eq!(
            record["credibility"].as_f64(),
            Some(0.0),
            "forger {key} keeps no credibility: {record}"
        );
        if sent_results.get(key).copied().unwrap_or(0) > 0 {
            assert_eq!(
                record["banned"], true,
                "forger {key} sent results and was caught: {record}"
            );
        }
    }
    for key in &honest {
        if let Some(record) = record(key) {
            assert_eq!(
                record["banned"], false,
                "honest worker {key} is not banned: {record}"
            );
        }
    }

    let (accepted, leases) = acceptances_and_leases(&app.state.db, &job_ids).await;
    assert!(
        accepted.iter().all(|(_, n)| *n == 1),
        "each task decided once: {accepted:?}"
    );
    let tasks: usize = accepted.len();
    println!(
        "byzantine ({backend:?}): {leases} tasks dispatched for {tasks} tasks in jobs: verification overhead {:.2}x",
        leases as f64 / tasks as f64
    );
}
