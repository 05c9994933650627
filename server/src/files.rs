//! Clinicians' uploaded files: checked by the DataExtractor before anything is stored, kept whole
//! in the database (so every server process sharing it sees them), visible only to their owner.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DerivePartialModel, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use vitalgrid_worker::template::{RecordingKind, Template};

use crate::db::entities::{file, job};
use crate::error::AppError;
use crate::extract::{Recording, extract};
use crate::jobs::JobView;

/// A file as the API shows it; the content itself never leaves the server.
#[derive(Debug, Clone, Serialize)]
pub struct FileView {
    pub id: i64,
    pub patient_ref: String,
    pub file_name: String,
    pub kind: RecordingKind,
    pub size_bytes: i64,
    pub rows: i64,
    pub signals: Vec<String>,
    pub ignored_columns: Vec<String>,
    pub duration_s: f64,
    pub sample_rate_hz: f64,
    pub created_at: i64,
    pub latest_job: Option<JobView>,
}

/// The columns of `files` without the content, for listings.
#[derive(Debug, Clone, DerivePartialModel, FromQueryResult)]
#[sea_orm(entity = "file::Entity")]
pub struct FileSummary {
    pub id: i64,
    pub owner_id: i64,
    pub patient_ref: String,
    pub file_name: String,
    pub kind: String,
    pub template_id: String,
    pub template_version: i32,
    pub size_bytes: i64,
    pub rows: i64,
    pub signals: String,
    pub ignored_columns: String,
    pub duration_s: f64,
    pub sample_rate_hz: f64,
    pub created_at_ms: i64,
}

impl FileSummary {
    fn view(self, latest_job: Option<JobView>) -> FileView {
        FileView {
            id: self.id,
            patient_ref: self.patient_ref,
            file_name: self.file_name,
            kind: if self.kind == "ecg" {
                RecordingKind::Ecg
            } else {
                RecordingKind::Vitals
            },
            size_bytes: self.size_bytes,
            rows: self.rows,
            signals: serde_json::from_str(&self.signals).unwrap_or_default(),
            ignored_columns: serde_json::from_str(&self.ignored_columns).unwrap_or_default(),
            duration_s: self.duration_s,
            sample_rate_hz: self.sample_rate_hz,
            created_at: self.created_at_ms,
            latest_job,
        }
    }
}

pub fn kind_name(kind: RecordingKind) -> &'static str {
    match kind {
        RecordingKind::Vitals => "vitals",
        RecordingKind::Ecg => "ecg",
    }
}

/// A pseudonymous patient reference as typed by the clinician: short, printable, trimmed.
pub fn validate_patient_ref(raw: &str) -> Result<String, AppError> {
    let patient_ref = raw.trim();
    if patient_ref.is_empty() {
        return Err(AppError::invalid(
            "invalid_patient_ref",
            "a patient reference is required",
        ));
    }
    if patient_ref.chars().count() > 64 || patient_ref.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "invalid_patient_ref",
            "the patient reference must be at most 64 printable characters",
        ));
    }
    Ok(patient_ref.to_owned())
}

/// File names are kept for the clinician's own listing only; strip any path a browser sent.
pub fn clean_file_name(raw: &str) -> String {
    let name = raw.rsplit(['/', '\\']).next().unwrap_or(raw).trim();
    let name: String = name.chars().filter(|c| !c.is_control()).take(255).collect();
    if name.is_empty() {
        "upload.csv".to_owned()
    } else {
        name
    }
}

/// Parses the upload (off the async threads: a big file takes a moment) and returns the recording.
pub async fn check_upload(
    content: Vec<u8>,
    templates: Vec<Template>,
) -> Result<(Vec<u8>, Recording), AppError> {
    tokio::task::spawn_blocking(move || {
        let recording = extract(&content, &templates)?;
        Ok((content, recording))
    })
    .await
    .map_err(|error| anyhow::anyhow!("upload parsing task: {error}"))?
}

pub struct NewFile {
    pub owner_id: i64,
    pub patient_ref: String,
    pub file_name: String,
    pub content: Vec<u8>,
    pub recording: Recording,
    pub kind: RecordingKind,
}

pub async fn store_file(
    db: &impl ConnectionTrait,
    new: NewFile,
    now_ms: i64,
) -> Result<FileView, AppError> {
    let recording = &new.recording;
    let json = |list: &[String]| serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned());
    let model = file::ActiveModel {
        owner_id: Set(new.owner_id),
        patient_ref: Set(new.patient_ref),
        file_name: Set(new.file_name),
        kind: Set(kind_name(new.kind).to_owned()),
        template_id: Set(recording.template_id.clone()),
        template_version: Set(recording.template_version as i32),
        size_bytes: Set(new.content.len() as i64),
        rows: Set(recording.rows() as i64),
        signals: Set(json(&recording.signal_names())),
        ignored_columns: Set(json(&recording.ignored_columns)),
        duration_s: Set(recording.duration_s()),
        sample_rate_hz: Set(recording.sample_rate_hz()),
        content: Set(new.content),
        created_at_ms: Set(now_ms),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let summary = FileSummary {
        id: model.id,
        owner_id: model.owner_id,
        patient_ref: model.patient_ref,
        file_name: model.file_name,
        kind: model.kind,
        template_id: model.template_id,
        template_version: model.template_version,
        size_bytes: model.size_bytes,
        rows: model.rows,
        signals: model.signals,
        ignored_columns: model.ignored_columns,
        duration_s: model.duration_s,
        sample_rate_hz: model.sample_rate_hz,
        created_at_ms: model.created_at_ms,
    };
    Ok(summary.view(None))
}

pub async fn list_files(
    db: &impl ConnectionTrait,
    owner_id: i64,
) -> Result<Vec<FileView>, AppError> {
    let files = file::Entity::find()
        .filter(file::Column::OwnerId.eq(owner_id))
        .order_by_desc(file::Column::Id)
        .into_partial_model::<FileSummary>()
        .all(db)
        .await?;
    let jobs = job::Entity::find()
        .filter(job::Column::OwnerId.eq(owner_id))
        .order_by_asc(job::Column::Id)
        .all(db)
        .await?;
    let has_result = crate::jobs::jobs_with_results(db, jobs.iter().map(|j| j.id)).await?;
    Ok(files
        .into_iter()
        .map(|summary| {
            let latest = jobs
                .iter()
                .rfind(|j| j.file_id == summary.id)
                .map(|j| JobView::new(j.clone(), has_result.contains(&j.id)));
            summary.view(latest)
        })
        .collect())
}

/// The file if it exists and belongs to `owner_id`; otherwise 404, whoever owns it.
pub async fn find_owned(
    db: &impl ConnectionTrait,
    owner_id: i64,
    file_id: i64,
) -> Result<file::Model, AppError> {
    file::Entity::find_by_id(file_id)
        .filter(file::Column::OwnerId.eq(owner_id))
        .one(db)
        .await?
        .ok_or(AppError::NotFound("file"))
}

/// Deletes a file with its jobs, tasks and results (the schema cascades); returns the ids of the
/// jobs deleted with it, whose reserved tasks the scheduler must drop (`SenderCore::drop_reserved`).
pub async fn delete_file(
    db: &impl ConnectionTrait,
    owner_id: i64,
    file_id: i64,
) -> Result<Vec<i64>, AppError> {
    let job_ids = job::Entity::find()
        .select_only()
        .column(job::Column::Id)
        .filter(job::Column::FileId.eq(file_id))
        .filter(job::Column::OwnerId.eq(owner_id))
        .into_tuple::<i64>()
        .all(db)
        .await?;
    let deleted = file::Entity::delete_many()
        .filter(file::Column::Id.eq(file_id))
        .filter(file::Column::OwnerId.eq(owner_id))
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(AppError::NotFound("file"));
    }
    Ok(job_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patient_refs_are_trimmed_and_bounded() {
        assert_eq!(
            validate_patient_ref("  PT-001 ").ok(),
            Some("PT-001".to_owned())
        );
        assert!(validate_patient_ref("   ").is_err());
        assert!(validate_patient_ref(&"x".repeat(65)).is_err());
        assert!(validate_patient_ref("a\nb").is_err());
    }

    #[test]
    fn file_names_lose_their_paths() {
        assert_eq!(clean_file_name("C:\\Users\\me\\vitals.csv"), "vitals.csv");
        assert_eq!(clean_file_name("/tmp/ecg.csv"), "ecg.csv");
        assert_eq!(clean_file_name(""), "upload.csv");
    }
}
