//! `vitalgrid audit-results`: re-runs every stored task with the native pipeline and compares the
//! result bytes with what the volunteer's worker returned. Because the pipeline is deterministic,
//! any difference means a damaged or forged result, or a pipeline that differs between builds.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use vitalgrid_worker::pipeline::run_task;
use vitalgrid_worker::protocol::{CheckedPayload, TaskPacket, sha256_hex};

use crate::db::entities::{job, task};
use crate::db::task_status;
use crate::templates::TemplateStore;

#[derive(Debug, Default, Serialize, PartialEq)]
pub struct AuditReport {
    pub tasks: usize,
    pub identical: usize,
    pub different: usize,
    /// Ids of the tasks whose stored result differs, or that could not be re-run.
    pub mismatched_tasks: Vec<String>,
}

pub async fn audit_results(
    db: &impl ConnectionTrait,
    templates: &TemplateStore,
) -> anyhow::Result<AuditReport> {
    let mut report = AuditReport::default();
    let done = task::Entity::find()
        .filter(task::Column::Status.eq(task_status::DONE))
        .order_by_asc(task::Column::JobId)
        .order_by_asc(task::Column::Seq)
        .all(db)
        .await?;
    for stored in done {
        let Some(owner) = job::Entity::find_by_id(stored.job_id).one(db).await? else {
            continue;
        };
        report.tasks += 1;
        let template = templates
            .get(&owner.template_id, owner.template_version as u32)
            .await?;
        let rerun = template.and_then(|template| {
            let packet = TaskPacket {
                task_id: stored.id.clone(),
                lease: stored.lease as u64,
                template_id: owner.template_id.clone(),
                template_version: owner.template_version as u32,
                algorithm: owner.algorithm.clone(),
                // The stored digest vouches for the payload at rest; the packet's checksum is
                // only for the wire.
                data: CheckedPayload::seal(
                    String::from_utf8(stored.payload.clone())
                        .ok()
                        .filter(|payload| {
                            sha256_hex(payload.as_bytes()) == stored.payload_sha256
                        })?,
                ),
            };
            run_task(&template, &packet).ok()
        });
        let identical = match (&rerun, &stored.result) {
            (Some(native), Some(returned)) => native.data.payload.as_bytes() == returned.as_slice(),
            _ => false,
        };
        if identical {
            report.identical += 1;
        } else {
            report.different += 1;
            report.mismatched_tasks.push(stored.id.clone());
        }
    }
    Ok(report)
}
