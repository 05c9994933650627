//! 200 workers in one process, a random fifth of them dropping off every two seconds and coming
//! back: every job still completes correctly.

use std::time::Duration;

use rand::seq::SliceRandom;
use vitalgrid_native_worker::Fault;

use crate::support::{
    Backend, Worker, assert_all_done, assert_correct_analysis, create_clinician, fault_scheduler,
    login, on_every_backend, spawn_app, vitals_csv,
};

const WORKERS: usize = 200;
const CHURN_EVERY: Duration = Duration::from_secs(2);

on_every_backend!(two_hundred_workers_with_a_fifth_churning_every_two_seconds_complete_every_job);

async fn two_hundred_workers_with_a_fifth_churning_every_two_seconds_complete_every_job(
    backend: Backend,
) {
    let app = spawn_app(backend, fault_scheduler()).await;
    create_clinician(&app.state.db, "ana@example.org").await;
    let api = login(&app.base, "ana@example.org").await;
    let mut job_ids = Vec::new();
    for seed in 1..=30 {
        let (_, job_id) = api
            .upload_and_submit(
                &format!("step-down-{seed}.csv"),
                vitals_csv(400 + seed, 1_200).as_bytes(),
            )
            .await;
        job_ids.push(job_id);
    }

    // Each task takes a second, so a churn round always finds workers holding tasks.
    let spawn = |n: usize| {
        Worker::spawn(
            &app.ws_url,
            &format!("churn-worker-{n:03}"),
            1,
            Fault::Slow(Duration::from_secs(1)),
        )
    };
    let mut workers: Vec<Option<Worker>> = (0..WORKERS).map(|n| Some(spawn(n))).collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut rounds = 0;
    let jobs = loop {
        let jobs = api.wait_for_jobs(&job_ids, CHURN_EVERY).await;
        if jobs
            .iter()
            .all(|j| j["status"] == "done" || j["status"] == "failed")
            || tokio::time::Instant::now() > deadline
        {
            break jobs;
        }
        rounds += 1;
        let mut picked: Vec<usize> = (0..WORKERS).collect();
        picked.shuffle(&mut rand::thread_rng());
        for (i, n) in picked.into_iter().take(WORKERS / 5).enumerate() {
            let Some(worker) = workers[n].take() else {
                continue;
            };
            // Half leave politely (releasing their tasks), half just vanish.
            if i % 2 == 0 {
                worker.stop().await;
            } else {
                worker.vanish();
            }
            workers[n] = Some(spawn(n));
        }
    };
    for worker in workers.into_iter().flatten() {
        worker.stop().await;
    }
    assert_all_done(&jobs);
    assert!(
        rounds >= 1,
        "the workers churned at least once before the jobs completed"
    );
    for job_id in &job_ids {
        assert_correct_analysis(&app.state.db, &api, *job_id).await;
    }
}
