//! Volunteers' WebSocket with native test workers running the real pipeline: completing jobs,
//! surviving corrupt packets and vanishing workers, and never seeing who the data belongs to.

use std::time::Duration;

use serde_json::Value;
use vitalgrid_server::accounts::Role;
use vitalgrid_server::config::SchedulerConfig;

use crate::support::{
    Backend, Misbehaviour, TestApp, fast_scheduler, on_every_backend, small_vitals_csv, spawn_app,
    spawn_app_on, spawn_app_with, spawn_native_worker,
};

const JOB_TIMEOUT: Duration = Duration::from_secs(60);

on_every_backend!(
    native_worker_completes_a_job_and_the_result_counts_every_valid_value,
    a_result_sent_twice_is_applied_once_and_counted_late_on_the_workers_record,
    rows_out_of_order_across_task_cuts_are_put_in_order_and_counted,
    corrupt_task_packet_gets_an_error_and_the_task_still_completes,
    worker_vanishing_mid_task_does_not_lose_the_task,
    volunteers_who_leave_mid_task_use_up_none_of_its_attempts,
    packets_carry_no_patient_reference_file_name_or_account,
    queued_job_survives_a_server_restart,
    with_two_replicas_each_task_is_answered_by_two_workers_and_the_history_shows_it,
    a_lone_worker_cannot_validate_its_own_results,
    answers_that_stood_alone_earn_no_credibility,
    an_idle_forger_fails_a_known_answer_probe_and_is_banned,
    a_forger_with_more_answers_than_a_statement_can_list_is_still_probed,
    jobs_submitted_while_others_finish_are_all_accepted_and_done,
    with_room_for_one_result_at_a_time_every_result_is_still_committed_once,
    a_job_of_many_parts_is_merged_page_by_page_and_a_damaged_part_fails_it_by_name,
);

/// A finished job's results are merged a page of parts at a time: a job of many pages gives the
/// analysis of one pass, and a part whose stored result no longer parses (damaged in the
/// database) fails its job with a reason naming the part.
async fn a_job_of_many_parts_is_merged_page_by_page_and_a_damaged_part_fails_it_by_name(
    backend: Backend,
) {
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use vitalgrid_server::db::entities::{job, task};

    let config = SchedulerConfig {
        vitals_rows_per_task: 20,
        ..fast_scheduler()
    };
    let app = spawn_app_with(backend, config).await;
    let client = app.user("ana@example.org", Role::Clinician).await;
    let csv = small_vitals_csv(3_000);
    let (_, whole) = app
        .upload_and_submit(&client, "PT-001", "night.csv", csv.as_bytes())
        .await;
    let (_, damaged) = app
        .upload_and_submit(&client, "PT-002", "night.csv", csv.as_bytes())
        .await;
    // Part 100 counts as done, with a result that is not JSON, before any worker connects.
    let changed = task::Entity::update_many()
        .col_expr(task::Column::Status, Expr::value("done"))
        .col_expr(task::Column::Result, Expr::value(b"{\"rows\": 90".to_vec()))
        .col_expr(task::Column::ResultSha256, Expr::value("0".repeat(64)))
        .filter(task::Column::JobId.eq(damaged))
        .filter(task::Column::Seq.eq(99))
        .exec(&app.state.db)
        .await
        .expect("part 100 damaged");
    assert_eq!(changed.rows_affected, 1);
    job::Entity::update_many()
        .col_expr(job::Column::TasksDone, Expr::value(1))
        .filter(job::Column::Id.eq(damaged))
        .exec(&app.state.db)
        .await
        .expect("counted");

    let (stop, worker) = spawn_native_worker(&app, 2, Misbehaviour::default());
    let whole = app.wait_for_job(&client, whole, JOB_TIMEOUT).await;
    let damaged = app.wait_for_job(&client, damaged, JOB_TIMEOUT).await;
    let _ = stop.send(());
    let _ = worker.await;

    assert_eq!(whole["status"], "done", "{whole}");
    assert!(
        whole["tasks_total"].as_i64() > Some(128),
        "three pages: {whole}"
    );
    let analysis = &app
        .job_result(&client, whole["id"].as_i64().expect("id"))
        .await["analysis"];
    assert_eq!(analysis["rows"], 3_001, "every part merged once, in order");
    assert_eq!(analysis["segments"], whole["tasks_total"]);

    assert_eq!(damaged["status"], "failed", "{damaged}");
    let reason = damaged["error"].as_str().expect("a reason");
    assert!(
        reason.contains("part 100 result unreadable"),
        "the reason names the part: {reason}"
    );
}

/// An app with a 300-row job done by an honest worker that has since left: its tasks are validated
/// and nothing is queued.
async fn job_validated_by_a_worker_now_gone(backend: Backend) -> (TestApp, reqwest::Client, i64) {
    let app = spawn_app(backend).await;
    let (client, _, job_id) = app.clinician_with_vitals_job(300).await;
    let (stop, honest) = spawn_native_worker(&app, 1, Misbehaviour::default());
    assert_eq!(
        app.wait_for_job(&client, job_id, JOB_TIMEOUT).await["status"],
        "done"
    );
    let _ = stop.send(());
    let _ = honest.await;
    (app, client, job_id)
}

async fn an_idle_forger_fails_a_known_answer_probe_and_is_banned(backend: Backend) {
    let (app, client, job_id) = job_validated_by_a_worker_now_gone(backend).await;
    let admin = app.user("root@example.org", Role::Admin).await;

    // Nothing is queued now: an idle newcomer only ever sees probes of validated tasks.
    let forger = forger_probed_and_banned(&app, &admin, "forger-key-0001").await;
    let record = app.worker_record(&admin, "forger-key-0001").await;
    assert_eq!(record["credibility"], 0.0);
    let result = app.job_result(&client, job_id).await;
    assert_eq!(
        result["analysis"]["rows"], 301,
        "the validated analysis is untouched"
    );

    let (_again, second_try) = spawn_native_worker(&app, 1, forger);
    let log = tokio::time::timeout(Duration::from_secs(10), second_try)
        .await
        .expect("refused at once")
        .expect("ran");
    assert!(
        log.frames_received
            .iter()
            .any(|f| f.contains("wrong result")),
        "the banned key is refused: {:?}",
        log.frames_received
    );
}

async fn with_two_replicas_each_task_is_answered_by_two_workers_and_the_history_shows_it(
    backend: Backend,
) {
    let app = spawn_app_with(
        backend,
        crate::support::SchedulerConfig {
            replicas: 2,
            ..fast_scheduler()
        },
    )
    .await;
    let (client, _, job_id) = app.clinician_with_vitals_job(2_000).await;
    let admin = app.user("root@example.org", Role::Admin).await;
    let (stop_a, worker_a) = spawn_native_worker(&app, 1, Misbehaviour::default());
    let (stop_b, worker_b) = spawn_native_worker(&app, 1, Misbehaviour::default());

    let job = app.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    let tasks = job["tasks_total"].as_u64().unwrap_or(0) as usize;
    let workers: Value = app.get_json(&admin, "/api/admin/workers").await;
    let agreed: i64 = workers
        .as_array()
        .map_or(0, |w| w.iter().filter_map(|w| w["agreed"].as_i64()).sum());
    assert_eq!(
        agreed as usize,
        2 * tasks,
        "each task was agreed by both workers: {workers}"
    );
    let _ = (stop_a.send(()), stop_b.send(()));
    let (log_a, log_b) = (worker_a.await.expect("ran"), worker_b.await.expect("ran"));
    assert_eq!(
        log_a.sent_of_type("result") + log_b.sent_of_type("result"),
        2 * tasks
    );

    let events: Value = app
        .get_json(&admin, &format!("/api/admin/jobs/{job_id}/events"))
        .await;
    let kinds: Vec<&str> = events.as_array().map_or(vec![], |e| {
        e.iter().filter_map(|e| e["kind"].as_str()).collect()
    });
    assert_eq!(kinds.first(), Some(&"submitted"));
    assert_eq!(
        kinds.iter().filter(|k| **k == "awaiting_replica").count(),
        tasks
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "result_accepted").count(),
        tasks
    );
    assert_eq!(kinds.last(), Some(&"done"));
}

async fn a_lone_worker_cannot_validate_its_own_results(backend: Backend) {
    let app = spawn_app_with(
        backend,
        crate::support::SchedulerConfig {
            replicas: 2,
            ..fast_scheduler()
        },
    )
    .await;
    let (client, _, job_id) = app.clinician_with_vitals_job(100).await;
    let (stop, worker) = spawn_native_worker(&app, 2, Misbehaviour::default());
    let job = app
        .wait_for_job(&client, job_id, std::time::Duration::from_secs(3))
        .await;
    assert_eq!(
        job["status"], "running",
        "one worker's answer is not enough: {job}"
    );
    assert_eq!(job["tasks_done"], 0);
    let _ = stop.send(());
    let log = worker.await.expect("ran");
    assert_eq!(
        log.sent_of_type("result"),
        1,
        "it was never given the same task twice"
    );
}

/// In a trusted pool each answer decides its task alone: nothing was compared, so nothing is
/// counted as agreed (credibility comes from confirmed answers and known-answer probes, which are
/// kept out of the way here).
async fn answers_that_stood_alone_earn_no_credibility(backend: Backend) {
    let app = spawn_app_with(
        backend,
        SchedulerConfig {
            probe_interval: Duration::from_secs(3_600),
            ..fast_scheduler()
        },
    )
    .await;
    let (client, _, job_id) = app.clinician_with_vitals_job(3_000).await;
    let admin = app.user("root@example.org", Role::Admin).await;
    let (stop, worker) = spawn_native_worker(&app, 2, Misbehaviour::default());

    let job = app.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    let workers: Value = app.get_json(&admin, "/api/admin/workers").await;
    assert_eq!(workers.as_array().map(Vec::len), Some(1), "{workers}");
    assert_eq!(workers[0]["agreed"], 0, "{workers}");
    assert_eq!(workers[0]["credibility"], 0.0, "{workers}");
    let _ = stop.send(());
    let log = worker.await.expect("worker ran");
    assert_eq!(
        log.sent_of_type("result"),
        job["tasks_total"].as_i64().unwrap_or(0) as usize,
        "every task was answered by this one worker"
    );
}

/// The result backlog at its extreme: room for one uncommitted result, so every other connection
/// waits to hand over its result until the one before is committed — and no result is lost or
/// applied twice.
async fn with_room_for_one_result_at_a_time_every_result_is_still_committed_once(backend: Backend) {
    let app = spawn_app_with(
        backend,
        SchedulerConfig {
            result_backlog_bytes: 1,
            ..fast_scheduler()
        },
    )
    .await;
    let (client, _, job_id) = app.clinician_with_vitals_job(9_000).await;
    let workers: Vec<_> = (0..3)
        .map(|_| spawn_native_worker(&app, 2, Misbehaviour::default()))
        .collect();

    let job = app.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["tasks_done"], job["tasks_total"]);
    assert!(job["tasks_total"].as_i64() >= Some(10), "{job}");
    let result = app.job_result(&client, job_id).await;
    assert_eq!(
        result["analysis"]["rows"], 9_001,
        "every row of the file counted once, across segments"
    );
    for (stop, worker) in workers {
        let _ = stop.send(());
        worker.await.expect("worker ran");
    }
}

async fn native_worker_completes_a_job_and_the_result_counts_every_valid_value(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _, job_id) = app.clinician_with_vitals_job(3_000).await;
    let (stop, worker) = spawn_native_worker(&app, 2, Misbehaviour::default());

    let job = app.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["tasks_done"], job["tasks_total"]);
    assert!(
        job["tasks_total"].as_i64() > Some(1),
        "the file was split into several tasks"
    );

    let result = app.job_result(&client, job_id).await;
    let analysis = &result["analysis"];
    assert_eq!(result["patient_ref"], "PT-001");
    assert_eq!(
        analysis["rows"], 3_001,
        "every row of the file counted once, across segments"
    );
    assert_eq!(analysis["duplicates_removed"], 1);
    let hr = analysis["signals"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "hr"))
        .expect("hr summary");
    assert_eq!(
        hr["n"], 2_999,
        "the HR of 0 is out of range, not a heart rate"
    );
    assert_eq!(hr["out_of_range"], 1);
    assert_eq!(hr["min"], 70.0);
    assert_eq!(hr["max"], 76.0);
    assert!(
        hr["trend"]["time_s"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );

    let _ = stop.send(());
    let log = worker.await.expect("worker ran");
    assert_eq!(
        log.sent_of_type("result"),
        job["tasks_total"].as_i64().unwrap_or(0) as usize
    );
}

/// A probe must be a task the worker has not answered. The answers are excluded in the database:
/// a volunteer whose history outgrows what one statement may list (SQLite takes 32 766 values) is
/// still probed, and a forger among such volunteers still caught.
async fn a_forger_with_more_answers_than_a_statement_can_list_is_still_probed(backend: Backend) {
    use sea_orm::{ActiveValue::Set, EntityTrait};
    use vitalgrid_server::db::entities::{task, task_result};
    use vitalgrid_server::jobs::{TaskIds, queued_task};

    const HISTORY: usize = 33_000;
    const KEY: &str = "long-serving-forger-01";
    let (app, _, job_id) = job_validated_by_a_worker_now_gone(backend).await;
    let admin = app.user("root@example.org", Role::Admin).await;

    // The key's history: answers to as many finished tasks, none of them a probe candidate (no
    // agreed result).
    let ids: Vec<String> = (0..HISTORY).map(|n| format!("history-{n:08}")).collect();
    for (batch, chunk) in ids.chunks(400).enumerate() {
        let tasks = chunk.iter().enumerate().map(|(n, id)| {
            let mut row = queued_task(
                &TaskIds::new(),
                job_id,
                1_000 + batch * 400 + n,
                "{}".to_owned(),
            );
            row.id = Set(id.clone());
            row.status = Set("done".to_owned());
            row
        });
        task::Entity::insert_many(tasks)
            .exec(&app.state.db)
            .await
            .expect("history tasks");
        let answers = chunk.iter().map(|id| task_result::ActiveModel {
            task_id: Set(id.clone()),
            lease: Set(1),
            worker_key: Set(KEY.to_owned()),
            result_sha256: Set("0".repeat(64)),
            result: Set(Vec::new()),
            received_at_ms: Set(0),
            ..Default::default()
        });
        task_result::Entity::insert_many(answers)
            .exec(&app.state.db)
            .await
            .expect("history answers");
    }

    forger_probed_and_banned(&app, &admin, KEY).await;
}

/// Connects a worker under `key` that forges its results, with nothing queued: it must answer a
/// known-answer probe, have its connection closed and its key banned. Returns its misbehaviour, to
/// try again with.
async fn forger_probed_and_banned(
    app: &TestApp,
    admin: &reqwest::Client,
    key: &'static str,
) -> Misbehaviour {
    let forger = Misbehaviour {
        forge_results: true,
        worker_key: Some(key),
        ..Misbehaviour::default()
    };
    let (_stop, forger_run) = spawn_native_worker(app, 1, forger);
    let log = tokio::time::timeout(Duration::from_secs(30), forger_run)
        .await
        .expect("the server closes the forger's connection")
        .expect("ran");
    assert!(log.sent_of_type("result") >= 1, "it answered a probe");
    let record = app.worker_record(admin, key).await;
    assert_eq!(record["banned"], true, "{record}");
    forger
}

async fn a_result_sent_twice_is_applied_once_and_counted_late_on_the_workers_record(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let (client, _, job_id) = app.clinician_with_vitals_job(3_000).await;
    let admin = app.user("root@example.org", Role::Admin).await;
    let replaying = Misbehaviour {
        send_results_twice: true,
        worker_key: Some("replay-key-0001"),
        ..Misbehaviour::default()
    };
    let (stop, worker) = spawn_native_worker(&app, 1, replaying);
    let job = app.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    let tasks = job["tasks_total"].as_i64().expect("tasks_total");
    assert!(tasks > 1);
    let analysis = &app.job_result(&client, job_id).await["analysis"];
    assert_eq!(analysis["rows"], 3_001, "each segment applied once");
    let _ = stop.send(());
    let log = worker.await.expect("worker ran");
    assert_eq!(log.sent_of_type("result"), 2 * tasks as usize);

    // The copies reach the server after their originals; wait for the last to be counted.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let late = loop {
        let late = app.worker_record(&admin, "replay-key-0001").await["late_results"]
            .as_i64()
            .unwrap_or(0);
        if late == tasks || tokio::time::Instant::now() > deadline {
            break late;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(late, tasks, "every second copy is on the record as late");
}

/// The analysis of `csv` by one native worker.
async fn analyse(app: &TestApp, client: &reqwest::Client, csv: &str) -> Value {
    let (_, job_id) = app
        .upload_and_submit(client, "PT-001", "night.csv", csv.as_bytes())
        .await;
    let (stop, worker) = spawn_native_worker(app, 2, Misbehaviour::default());
    let job = app.wait_for_job(client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    assert!(
        job["tasks_total"].as_i64() > Some(1),
        "several tasks: {job}"
    );
    let _ = stop.send(());
    worker.await.expect("worker ran");
    app.job_result(client, job_id).await["analysis"].clone()
}

async fn rows_out_of_order_across_task_cuts_are_put_in_order_and_counted(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.user("ana@example.org", Role::Clinician).await;
    let sorted = small_vitals_csv(3_000);
    // The same file with seconds 100..110 moved to its end: they now sit in another task.
    let (header, rows) = sorted.split_once('\n').expect("header");
    let lines: Vec<&str> = rows.lines().collect();
    let late: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| {
            (100..110).contains(
                &l.split(',')
                    .next()
                    .and_then(|t| t.parse::<i32>().ok())
                    .unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(late.len(), 10);
    let mut shuffled = format!("{header}\n");
    for line in lines.iter().filter(|l| !late.contains(l)).chain(&late) {
        shuffled.push_str(line);
        shuffled.push('\n');
    }

    let expected = analyse(&app, &client, &sorted).await;
    let analysis = analyse(&app, &client, &shuffled).await;
    assert_eq!(
        analysis["quality"]["out_of_order"], 10,
        "{}",
        analysis["quality"]
    );
    assert_eq!(expected["quality"]["out_of_order"], 0);
    // Put back in order, the rows analyse exactly as the sorted file's.
    assert_eq!(analysis["signals"], expected["signals"]);
    assert_eq!(analysis["rows"], expected["rows"]);
    assert_eq!(
        analysis["duplicates_removed"],
        expected["duplicates_removed"]
    );
}

async fn corrupt_task_packet_gets_an_error_and_the_task_still_completes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _, job_id) = app.clinician_with_vitals_job(2_000).await;
    let misbehaviour = Misbehaviour {
        corrupt_first_task: true,
        ..Misbehaviour::default()
    };
    let (stop, worker) = spawn_native_worker(&app, 1, misbehaviour);

    let job = app.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    let _ = stop.send(());
    let log = worker.await.expect("worker ran");
    let errors: Vec<Value> = log
        .frames_sent
        .iter()
        .filter_map(|f| serde_json::from_str::<Value>(f).ok())
        .filter(|v| v["type"] == "error")
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly the corrupt packet was refused: {errors:?}"
    );
    assert_eq!(errors[0]["code"], "integrity");
    // Every task answered; one more answer is possible when the machine is so loaded that an ACK
    // arrived after the ACK timeout and the packet was sent again (the copy's result is stale).
    let results = log.sent_of_type("result");
    let tasks = job["tasks_total"].as_i64().unwrap_or(0) as usize;
    assert!(
        (tasks..=tasks + 1).contains(&results),
        "{results} results for {tasks} tasks"
    );
}

async fn worker_vanishing_mid_task_does_not_lose_the_task(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _, job_id) = app.clinician_with_vitals_job(500).await;

    let (_keep, deserter) = spawn_native_worker(
        &app,
        1,
        Misbehaviour {
            vanish_after_first_ack: true,
            ..Misbehaviour::default()
        },
    );
    let deserter_log = deserter.await.expect("deserter ran");
    assert_eq!(deserter_log.sent_of_type("ack"), 1, "it took a task");
    assert_eq!(
        deserter_log.sent_of_type("result"),
        0,
        "and vanished without a result"
    );

    let (stop, worker) = spawn_native_worker(&app, 1, Misbehaviour::default());
    let job = app.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    let _ = stop.send(());
    let log = worker.await.expect("worker ran");
    assert!(log.sent_of_type("result") >= 1);
}

/// More volunteers than a task has attempts take it and leave (a close frame, as Stop sends): none
/// of that is the task's fault, so it is requeued each time without failing, and the job completes.
async fn volunteers_who_leave_mid_task_use_up_none_of_its_attempts(backend: Backend) {
    let app = spawn_app(backend).await;
    let (client, _, job_id) = app.clinician_with_vitals_job(500).await;
    let admin = app.user("root@example.org", Role::Admin).await;
    let leavers = fast_scheduler().max_attempts as usize + 1;
    for _ in 0..leavers {
        let (_keep, leaver) = spawn_native_worker(
            &app,
            1,
            Misbehaviour {
                leave_after_first_ack: true,
                ..Misbehaviour::default()
            },
        );
        let log = leaver.await.expect("leaver ran");
        assert_eq!(log.sent_of_type("ack"), 1, "it took the task");
        assert_eq!(log.sent_of_type("result"), 0, "and left without a result");
        // The next volunteer connects once the task is back in the queue: every lease requeued.
        let deadline = tokio::time::Instant::now() + JOB_TIMEOUT;
        loop {
            let events: Value = app
                .get_json(&admin, &format!("/api/admin/jobs/{job_id}/events"))
                .await;
            let count = |kind: &str| {
                events
                    .as_array()
                    .map_or(0, |e| e.iter().filter(|e| e["kind"] == kind).count())
            };
            assert_eq!(count("failed"), 0, "{events}");
            if count("leased") > 0 && count("requeued") == count("leased") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the task was not requeued: {events}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    let (stop, worker) = spawn_native_worker(&app, 1, Misbehaviour::default());
    let job = app.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    let _ = stop.send(());
    let _ = worker.await;
    let events: Value = app
        .get_json(&admin, &format!("/api/admin/jobs/{job_id}/events"))
        .await;
    let left = events.as_array().map_or(0, |e| {
        e.iter()
            .filter(|e| e["kind"] == "requeued" && e["detail"] == "the worker left")
            .count()
    });
    assert_eq!(left, leavers, "each departure requeued the task: {events}");
}

async fn packets_carry_no_patient_reference_file_name_or_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app
        .user("secret.clinician@example.org", Role::Clinician)
        .await;
    let csv = "timestamp,hr,spo2\n2026-03-01T10:00:00Z,80,97\n2026-03-01T10:00:01Z,81,97\n2026-03-01T10:00:02Z,82,96\n";
    let (_, job_id) = app
        .upload_and_submit(
            &client,
            "PATIENT-SECRET-4711",
            "smith-john-icu.csv",
            csv.as_bytes(),
        )
        .await;
    let (stop, worker) = spawn_native_worker(&app, 1, Misbehaviour::default());
    let job = app.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    let _ = stop.send(());
    let log = worker.await.expect("worker ran");

    let task_frames: Vec<&String> = log
        .frames_received
        .iter()
        .filter(|f| f.contains("\"type\":\"task\""))
        .collect();
    assert!(
        !task_frames.is_empty(),
        "the worker captured its task packets"
    );
    for frame in log.frames_received.iter().chain(&log.frames_sent) {
        for secret in [
            "PATIENT-SECRET-4711",
            "smith-john-icu",
            "secret.clinician",
            "2026-03-01",
        ] {
            assert!(
                !frame.contains(secret),
                "a packet leaks `{secret}`: {frame}"
            );
        }
    }
}

async fn queued_job_survives_a_server_restart(backend: Backend) {
    let first = spawn_app(backend).await;
    let client = first.user("ana@example.org", Role::Clinician).await;
    let (_, job_id) = first
        .upload_and_submit(
            &client,
            "PT-001",
            "night.csv",
            small_vitals_csv(1_500).as_bytes(),
        )
        .await;

    // A second server on the same database stands in for the restarted one: everything it knows
    // of the job comes from the database.
    let restarted = spawn_app_on(&first.database_url, crate::support::fast_scheduler()).await;
    let (stop, worker) = spawn_native_worker(&restarted, 2, Misbehaviour::default());
    let job = restarted.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
    assert_eq!(job["status"], "done", "{job}");
    let _ = stop.send(());
    let _ = worker.await;
}

/// Clinicians submit while other jobs' last results land and are merged. On MariaDB the merge reads
/// the job's tasks with a locking read, and a new job inserts task rows beside them: each
/// submission must still be accepted, and every job finish.
async fn jobs_submitted_while_others_finish_are_all_accepted_and_done(backend: Backend) {
    const WAVES: usize = 4;
    const JOBS_PER_WAVE: usize = 8;
    let app = spawn_app(backend).await;
    let client = app.user("ana@example.org", Role::Clinician).await;
    let response = app
        .upload(
            &client,
            "PT-001",
            "short.csv",
            small_vitals_csv(1_000).as_bytes(),
        )
        .await;
    assert_eq!(response.status(), 201, "upload accepted");
    let file: Value = response.json().await.expect("file json");
    let submit_path = app.url(&format!("/api/files/{}/jobs", file["id"]));
    let workers: Vec<_> = (0..3)
        .map(|_| spawn_native_worker(&app, 2, Misbehaviour::default()))
        .collect();

    let mut job_ids = Vec::new();
    for _ in 0..WAVES {
        let submissions = (0..JOBS_PER_WAVE).map(|_| {
            let (client, path) = (client.clone(), submit_path.clone());
            tokio::spawn(async move {
                let response = client
                    .post(path)
                    .json(&serde_json::json!({}))
                    .send()
                    .await
                    .expect("submit");
                let status = response.status();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                (status, body)
            })
        });
        for submission in submissions.collect::<Vec<_>>() {
            let (status, body) = submission.await.expect("submission ran");
            assert_eq!(status, 201, "submission refused: {body}");
            job_ids.push(body["id"].as_i64().expect("job id"));
        }
        // The next wave lands while this one's results are being merged.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for job_id in job_ids {
        let job = app.wait_for_job(&client, job_id, JOB_TIMEOUT).await;
        assert_eq!(job["status"], "done", "{job}");
    }
    for (stop, worker) in workers {
        let _ = stop.send(());
        let _ = worker.await;
    }
}
