//! Jobs: a file submitted for analysis. Submitting cuts the file into tasks (stored with the job in
//! one transaction) and wakes the scheduler; the job's result appears when its last task is merged.

use std::collections::HashSet;

use rand::RngCore;
use sea_orm::sea_query::Query;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QuerySelect, Set, TransactionTrait,
};
use serde::Serialize;
use vitalgrid_worker::protocol::{TaskData, sha256_hex};
use vitalgrid_worker::template::{RecordingKind, Template};

use crate::app::AppState;
use crate::config::SchedulerConfig;
use crate::db::entities::{file, job, result, task};
use crate::db::{is_deadlock, job_status, task_status};
use crate::error::AppError;
use crate::events;
use crate::extract::{Recording, SegmentPlan, split_into_tasks, trend_bucket_for};
use crate::files::{check_upload, find_owned};
use crate::scheduler::priority::Priority;

/// What a task should take on a typical connected worker: long enough that per-task overhead is
/// small, short enough that a volunteer closing the tab loses little.
const TARGET_TASK_S: f64 = 5.0;
/// Below this a task is mostly overhead, whatever the workers' speed.
const MIN_TASK_ROWS: usize = 500;

/// Rows per task: what the median connected worker does in `TARGET_TASK_S`, never more than the
/// configured size (which bounds packet size and memory in a browser tab).
pub fn task_rows(configured_max: usize, typical_rows_per_s: Option<f64>) -> usize {
    match typical_rows_per_s {
        Some(speed) if speed.is_finite() && speed > 0.0 => ((speed * TARGET_TASK_S) as usize)
            .clamp(MIN_TASK_ROWS.min(configured_max), configured_max),
        _ => configured_max,
    }
}

/// Context sent on each side of an ECG segment, in seconds.
const ECG_OVERLAP_S: f64 = 3.0;

/// Cuts a recording into the task payloads of one job: segments of `task_rows` rows (from the
/// configuration and the pool's measured speed, when known) and chart buckets for the whole
/// recording. Pure, so the pipeline bench cuts its files exactly as a job does.
pub fn task_payloads(
    recording: &Recording,
    kind: RecordingKind,
    scheduler: &SchedulerConfig,
    typical_rows_per_s: Option<f64>,
) -> Vec<TaskData> {
    let plan = match kind {
        RecordingKind::Vitals => SegmentPlan {
            max_rows: task_rows(scheduler.vitals_rows_per_task, typical_rows_per_s),
            overlap_rows: 0,
        },
        // Beat detection needs context on both sides of a cut: filters settle and adaptive
        // thresholds learn within ~2 s, so each segment carries 3 s more on either side.
        RecordingKind::Ecg => SegmentPlan {
            max_rows: task_rows(scheduler.ecg_rows_per_task, typical_rows_per_s),
            overlap_rows: (ECG_OVERLAP_S * recording.sample_rate_hz()).ceil() as usize,
        },
    };
    let trend_bucket_s = trend_bucket_for(recording.duration_s(), scheduler.trend_points);
    split_into_tasks(recording, plan, trend_bucket_s)
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct JobView {
    pub id: i64,
    pub file_id: i64,
    pub algorithm: String,
    /// The template version the job runs with: later versions never change a job's meaning.
    pub template_id: String,
    pub template_version: i32,
    pub priority: String,
    pub status: String,
    pub tasks_total: i32,
    pub tasks_done: i32,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<String>,
    pub has_result: bool,
}

impl JobView {
    pub fn new(model: job::Model, has_result: bool) -> Self {
        Self {
            id: model.id,
            file_id: model.file_id,
            algorithm: model.algorithm,
            template_id: model.template_id,
            template_version: model.template_version,
            priority: model.priority,
            status: model.status,
            tasks_total: model.tasks_total,
            tasks_done: model.tasks_done,
            created_at: model.created_at_ms,
            finished_at: model.finished_at_ms,
            error: model.error,
            has_result,
        }
    }
}

/// A finished analysis with what the clinician needs to recognise it.
#[derive(Debug, Clone, Serialize)]
pub struct ResultView {
    pub job_id: i64,
    pub file_id: i64,
    pub patient_ref: String,
    pub file_name: String,
    pub kind: String,
    pub analysis: serde_json::Value,
}

/// Which of `job_ids` have a stored result.
pub async fn jobs_with_results(
    db: &impl ConnectionTrait,
    job_ids: impl IntoIterator<Item = i64>,
) -> Result<HashSet<i64>, AppError> {
    let ids: Vec<i64> = job_ids.into_iter().collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let found = result::Entity::find()
        .select_only()
        .column(result::Column::JobId)
        .filter(result::Column::JobId.is_in(ids))
        .into_tuple::<i64>()
        .all(db)
        .await?;
    Ok(found.into_iter().collect())
}

/// Cuts an owned file into tasks and queues them as a new job.
pub async fn submit_job(
    state: &AppState,
    owner_id: i64,
    file_id: i64,
    algorithm: Option<String>,
    priority: Priority,
) -> Result<JobView, AppError> {
    let stored = find_owned(&state.db, owner_id, file_id).await?;
    // New jobs run with the latest version of the file's template.
    let template = state
        .templates
        .latest()
        .await?
        .into_iter()
        .find(|t| t.id == stored.template_id)
        .ok_or_else(|| anyhow::anyhow!("file {} names an unknown template", stored.id))?;
    let algorithm = choose_algorithm(&template, algorithm)?;
    let (_, recording) = check_upload(stored.content.clone(), vec![template.clone()]).await?;
    let (scheduler, speed) = (
        state.config.scheduler.clone(),
        state.scheduler.typical_speed(),
    );
    let trend_bucket_s = trend_bucket_for(recording.duration_s(), scheduler.trend_points);
    let kind = template.kind;
    let payloads = tokio::task::spawn_blocking(move || {
        task_payloads(&recording, kind, &scheduler, speed)
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<String>, _>>()
    })
    .await
    .map_err(|error| anyhow::anyhow!("task splitting: {error}"))?
    .map_err(|error| anyhow::anyhow!("task payload: {error}"))?;

    let now = state.clock.now_ms();
    let detail = format!(
        "{} parts, {algorithm}, {} priority",
        payloads.len(),
        priority.as_str()
    );
    let new_job = job::ActiveModel {
        file_id: Set(stored.id),
        owner_id: Set(owner_id),
        algorithm: Set(algorithm),
        template_id: Set(template.id.clone()),
        template_version: Set(template.version as i32),
        status: Set(job_status::QUEUED.to_owned()),
        tasks_total: Set(payloads.len() as i32),
        tasks_done: Set(0),
        trend_bucket_s: Set(trend_bucket_s),
        error: Set(None),
        created_at_ms: Set(now),
        finished_at_ms: Set(None),
        priority: Set(priority.as_str().to_owned()),
        ..Default::default()
    };
    // MySQL/MariaDB may pick this transaction as the victim of a deadlock with the scheduler's
    // (the new task rows sit beside rows it locks); nothing of it was applied, so it runs again.
    let mut tries = 0;
    let created = loop {
        tries += 1;
        match insert_job(&state.db, new_job.clone(), &detail, &payloads, now).await {
            Ok(created) => break created,
            Err(error) if tries < SUBMIT_TRIES && is_deadlock(&error) => {
                tracing::info!(%error, tries, "a job submission was rolled back by a deadlock; retrying");
            }
            Err(error) => return Err(error.into()),
        }
    };
    tracing::info!(
        job.id = created.id,
        tasks = created.tasks_total,
        "job submitted"
    );
    state.scheduler.notify();
    Ok(JobView::new(created, false))
}

/// Runs of a job submission's transaction before a deadlock is reported as an error.
const SUBMIT_TRIES: u32 = 3;

/// Stores a new job, its "submitted" event and its queued tasks in one transaction.
async fn insert_job(
    db: &DatabaseConnection,
    new_job: job::ActiveModel,
    detail: &str,
    payloads: &[String],
    now: i64,
) -> Result<job::Model, DbErr> {
    let transaction = db.begin().await?;
    let created = new_job.insert(&transaction).await?;
    events::record(
        &transaction,
        created.id,
        None,
        None,
        "submitted",
        detail,
        now,
    )
    .await?;
    // Batches keep each INSERT well under MySQL's packet limit.
    const TASKS_PER_INSERT: usize = 8;
    let ids = TaskIds::new();
    for (batch_no, batch) in payloads.chunks(TASKS_PER_INSERT).enumerate() {
        let tasks = batch.iter().enumerate().map(|(n, payload)| {
            queued_task(
                &ids,
                created.id,
                batch_no * TASKS_PER_INSERT + n,
                payload.clone(),
            )
        });
        task::Entity::insert_many(tasks).exec(&transaction).await?;
    }
    transaction.commit().await?;
    Ok(created)
}

/// The ids of one job's tasks: 64 random bits the job's tasks share, the part's number, then 32
/// more random bits, as 32 hex digits. A job's ids in the order of its parts keep the indexes on
/// task ids in order where it matters: a group of results lands on a few neighbouring index pages,
/// where wholly random ids put each result on a page of its own, and SQLite writes every page a
/// transaction touched to its log whole (docs/benchmarks.md, eleventh session). The random parts
/// keep ids saying nothing a task's packet does not say already: not which job, nor how many jobs
/// came before (a part's number follows from the times the packet carries).
#[derive(Debug, Clone, Copy)]
pub struct TaskIds {
    job_part: [u8; 8],
}

impl TaskIds {
    /// Ids for a new job.
    pub fn new() -> Self {
        let mut job_part = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut job_part);
        Self { job_part }
    }

    /// The id of part `seq`.
    pub fn of(&self, seq: usize) -> String {
        format!(
            "{}{:08x}{}",
            hex::encode(self.job_part),
            seq & 0xffff_ffff,
            random_end()
        )
    }

    /// An id of the same job and part as `id`, with a fresh random end: what a known-answer probe
    /// repeating that task goes out under, so that it looks like any task (a probe with an id of
    /// another shape would tell a worker which tasks are probes, and a forger could answer those
    /// honestly and forge the rest). Any other 32 hex digits, such as an id from before ids had
    /// parts, keep their first 24 the same way; an id of another length gets a random one.
    pub fn again(id: &str) -> String {
        match id.get(..JOB_AND_PART_DIGITS) {
            Some(job_and_part) if id.len() == ID_DIGITS => {
                format!("{job_and_part}{}", random_end())
            }
            _ => crate::scheduler::random_id(),
        }
    }
}

/// Hex digits of a task id, and of its job's part and part number together.
const ID_DIGITS: usize = 32;
const JOB_AND_PART_DIGITS: usize = 24;

/// The last 32 bits of a task id, as 8 hex digits.
fn random_end() -> String {
    let mut random = [0u8; 4];
    rand::thread_rng().fill_bytes(&mut random);
    hex::encode(random)
}

impl Default for TaskIds {
    fn default() -> Self {
        Self::new()
    }
}

/// The row of a new task, queued and never leased: segment `seq` of job `job_id`, with `payload`
/// (the JSON of its `TaskData`) and the digest that vouches for it at rest.
pub fn queued_task(ids: &TaskIds, job_id: i64, seq: usize, payload: String) -> task::ActiveModel {
    task::ActiveModel {
        id: Set(ids.of(seq)),
        job_id: Set(job_id),
        seq: Set(seq as i32),
        status: Set(task_status::QUEUED.to_owned()),
        payload_sha256: Set(sha256_hex(payload.as_bytes())),
        payload: Set(payload.into_bytes()),
        lease: Set(0),
        lease_worker: Set(None),
        lease_expires_at_ms: Set(None),
        attempts: Set(0),
        result: Set(None),
        result_sha256: Set(None),
        replicas_needed: Set(0),
    }
}

fn choose_algorithm(template: &Template, requested: Option<String>) -> Result<String, AppError> {
    match requested {
        None => template
            .default_algorithm()
            .map(str::to_owned)
            .ok_or_else(|| AppError::invalid("no_algorithm", "this kind of file has no analysis")),
        Some(name) if template.algorithms.contains(&name) => Ok(name),
        Some(name) => Err(AppError::invalid(
            "unknown_algorithm",
            format!(
                "`{name}` is not available for this file; choose one of {}",
                template.algorithms.join(", ")
            ),
        )),
    }
}

async fn find_owned_job(
    db: &impl ConnectionTrait,
    owner_id: i64,
    job_id: i64,
) -> Result<job::Model, AppError> {
    job::Entity::find_by_id(job_id)
        .filter(job::Column::OwnerId.eq(owner_id))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("job"))
}

pub async fn get_job(
    db: &impl ConnectionTrait,
    owner_id: i64,
    job_id: i64,
) -> Result<JobView, AppError> {
    let found = find_owned_job(db, owner_id, job_id).await?;
    let has_result = result::Entity::find_by_id(job_id).one(db).await?.is_some();
    Ok(JobView::new(found, has_result))
}

pub async fn get_result(
    db: &impl ConnectionTrait,
    owner_id: i64,
    job_id: i64,
) -> Result<ResultView, AppError> {
    let found = find_owned_job(db, owner_id, job_id).await?;
    let stored = result::Entity::find_by_id(job_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("result"))?;
    let source = file::Entity::find_by_id(found.file_id)
        .into_partial_model::<crate::files::FileSummary>()
        .one(db)
        .await?
        .ok_or(AppError::NotFound("file"))?;
    let analysis = serde_json::from_str(&stored.analysis).map_err(|error| {
        anyhow::anyhow!("stored analysis of job {job_id} is unreadable: {error}")
    })?;
    Ok(ResultView {
        job_id,
        file_id: found.file_id,
        patient_ref: source.patient_ref,
        file_name: source.file_name,
        kind: source.kind,
        analysis,
    })
}

/// Deletes a job's result together with the task copies of the patient's data it was made from.
pub async fn delete_result(
    db: &impl TransactionTrait,
    owner_id: i64,
    job_id: i64,
) -> Result<(), AppError> {
    let transaction = db.begin().await?;
    // The DELETE first, limited to the owner's job: the transaction then takes SQLite's write lock
    // at its first statement, where the busy handler waits. Begun with a read, it would have to
    // upgrade to a write, which SQLite refuses at once whenever another connection committed in
    // between — under load, the scheduler's writer does every few milliseconds.
    let owned_job = Query::select()
        .column(job::Column::Id)
        .from(job::Entity)
        .and_where(job::Column::Id.eq(job_id))
        .and_where(job::Column::OwnerId.eq(owner_id))
        .to_owned();
    let deleted = result::Entity::delete_many()
        .filter(result::Column::JobId.in_subquery(owned_job))
        .exec(&transaction)
        .await?;
    if deleted.rows_affected == 0 {
        // Nothing changed; say what is missing, the clinician's job or its result.
        find_owned_job(&transaction, owner_id, job_id).await?;
        return Err(AppError::NotFound("result"));
    }
    task::Entity::delete_many()
        .filter(task::Column::JobId.eq(job_id))
        .exec(&transaction)
        .await?;
    transaction.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgrid_worker::template::builtin_templates;

    #[test]
    fn tasks_shrink_for_slow_workers_within_bounds() {
        assert_eq!(
            task_rows(3_600, None),
            3_600,
            "no measurement yet: the configured size"
        );
        assert_eq!(
            task_rows(3_600, Some(1_000_000.0)),
            3_600,
            "fast workers: capped"
        );
        assert_eq!(
            task_rows(60_000, Some(2_000.0)),
            10_000,
            "five seconds of a slow worker"
        );
        assert_eq!(
            task_rows(60_000, Some(1.0)),
            500,
            "never below the overhead floor"
        );
    }

    #[test]
    fn a_jobs_task_ids_sort_by_part_and_share_nothing_with_another_jobs() {
        let (job, other_job) = (TaskIds::new(), TaskIds::new());
        let ids: Vec<String> = [0, 1, 255, 256, 70_000].map(|seq| job.of(seq)).into();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
        assert!(
            ids.iter()
                .all(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())),
            "{ids:?}"
        );
        assert_eq!(&ids[3][16..24], "00000100", "part 256 after the job's part");
        assert!(ids.iter().all(|id| id[..16] == ids[0][..16]));
        assert_ne!(
            other_job.of(0)[..16],
            ids[0][..16],
            "another job's ids differ"
        );
        assert_ne!(job.of(1), job.of(1), "the last part is random too");
    }

    #[test]
    fn a_probe_goes_out_under_an_id_shaped_like_its_tasks() {
        let known = TaskIds::new().of(41);
        let probe = TaskIds::again(&known);
        assert_eq!(probe.len(), known.len());
        assert_eq!(
            probe[..24],
            known[..24],
            "the job's part and the part's number"
        );
        assert_ne!(probe, known, "a fresh random end");
        // A task from before ids had parts: any 32 hex digits look like it.
        let old = crate::scheduler::random_id();
        assert_eq!(TaskIds::again(&old)[..24], old[..24]);
        assert_eq!(TaskIds::again("short").len(), 32);
    }

    #[test]
    fn default_algorithm_is_the_templates_first_and_others_are_refused() {
        let template = &builtin_templates()[0];
        assert_eq!(
            choose_algorithm(template, None).ok().as_deref(),
            template.default_algorithm()
        );
        let error = choose_algorithm(template, Some("astrology".into())).expect_err("refused");
        assert!(error.to_string().contains("astrology"));
    }
}
