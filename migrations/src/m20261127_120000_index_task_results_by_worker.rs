//! A worker's answers are looked up by its key: the tasks a known-answer probe must not repeat, and
//! the answers to redo when the worker is banned. Answers accumulate with every result, so those
//! lookups go through an index on the key (with the task, which is all a probe reads) instead of
//! every answer ever.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "idx_task_results_worker";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(TaskResults::Table)
                    .col(TaskResults::WorkerKey)
                    .col(TaskResults::TaskId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(TaskResults::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum TaskResults {
    Table,
    WorkerKey,
    TaskId,
}
