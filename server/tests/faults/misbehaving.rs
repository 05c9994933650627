//! Workers that drop ACKs, vanish mid-task, dawdle or corrupt their results, mixed with good ones.

use std::time::Duration;

use vitalgrid_native_worker::Fault;

use crate::support::{
    Backend, Worker, assert_all_done, assert_correct_analysis, create_clinician, fault_scheduler,
    login, on_every_backend, spawn_app, vitals_csv,
};

on_every_backend!(
    every_job_completes_correctly_despite_workers_that_drop_acks_vanish_dawdle_or_corrupt
);

async fn every_job_completes_correctly_despite_workers_that_drop_acks_vanish_dawdle_or_corrupt(
    backend: Backend,
) {
    let app = spawn_app(backend, fault_scheduler()).await;
    create_clinician(&app.state.db, "ana@example.org").await;
    let api = login(&app.base, "ana@example.org").await;
    let mut job_ids = Vec::new();
    for seed in 1..=4 {
        let (_, job_id) = api
            .upload_and_submit(
                &format!("night-{seed}.csv"),
                vitals_csv(seed, 1_500).as_bytes(),
            )
            .await;
        job_ids.push(job_id);
    }

    let faults = [
        ("drop-acks-1", Fault::DropAcks),
        ("deserter-01", Fault::DisconnectMidTask),
        ("slowcoach-1", Fault::Slow(Duration::from_millis(400))),
        ("corrupter-1", Fault::CorruptResults),
    ];
    let mut workers: Vec<Worker> = faults
        .iter()
        .map(|(key, fault)| Worker::spawn(&app.ws_url, key, 2, *fault))
        .collect();
    for n in 0..3 {
        workers.push(Worker::spawn(
            &app.ws_url,
            &format!("good-worker-{n}"),
            2,
            Fault::None,
        ));
    }

    let jobs = api.wait_for_jobs(&job_ids, Duration::from_secs(90)).await;
    for worker in workers {
        worker.stop().await;
    }
    assert_all_done(&jobs);
    for job_id in job_ids {
        assert_correct_analysis(&app.state.db, &api, job_id).await;
    }
}
