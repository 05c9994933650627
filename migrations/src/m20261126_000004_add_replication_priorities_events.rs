//! What the scheduler needs to survive real volunteers: task results from several workers
//! (replication), each worker's record (credibility), job priorities, and an event history.

use sea_orm_migration::prelude::*;

use crate::large::long_binary;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(
                        ColumnDef::new(Jobs::Priority)
                            .string_len(16)
                            .not_null()
                            .default("normal"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Tasks::Table)
                    .add_column(
                        ColumnDef::new(Tasks::ReplicasNeeded)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TaskResults::Table)
                    .col(
                        ColumnDef::new(TaskResults::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(TaskResults::TaskId)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(TaskResults::Lease).big_integer().not_null())
                    .col(
                        ColumnDef::new(TaskResults::WorkerKey)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(TaskResults::ResultSha256)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(long_binary(manager, TaskResults::Result).not_null())
                    .col(
                        ColumnDef::new(TaskResults::ReceivedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TaskResults::Table, TaskResults::TaskId)
                            .to(Tasks::Table, Tasks::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_task_results_task")
                    .table(TaskResults::Table)
                    .col(TaskResults::TaskId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WorkerRecords::Table)
                    .col(
                        ColumnDef::new(WorkerRecords::WorkerKey)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WorkerRecords::Agreed)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(WorkerRecords::Disagreed)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(WorkerRecords::Banned)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(WorkerRecords::FirstSeenAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(WorkerRecords::LastSeenAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(JobEvents::Table)
                    .col(
                        ColumnDef::new(JobEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(JobEvents::JobId).big_integer().not_null())
                    .col(ColumnDef::new(JobEvents::TaskId).string_len(32).null())
                    .col(ColumnDef::new(JobEvents::Worker).string_len(64).null())
                    .col(ColumnDef::new(JobEvents::Kind).string_len(32).not_null())
                    .col(ColumnDef::new(JobEvents::Detail).text().not_null())
                    .col(ColumnDef::new(JobEvents::AtMs).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_job_events_job")
                    .table(JobEvents::Table)
                    .col(JobEvents::JobId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            JobEvents::Table.into_iden(),
            WorkerRecords::Table.into_iden(),
            TaskResults::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Tasks::Table)
                    .drop_column(Tasks::ReplicasNeeded)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .drop_column(Jobs::Priority)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Priority,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    ReplicasNeeded,
}

#[derive(DeriveIden)]
enum TaskResults {
    Table,
    Id,
    TaskId,
    Lease,
    WorkerKey,
    ResultSha256,
    Result,
    ReceivedAtMs,
}

#[derive(DeriveIden)]
enum WorkerRecords {
    Table,
    WorkerKey,
    Agreed,
    Disagreed,
    Banned,
    FirstSeenAtMs,
    LastSeenAtMs,
}

#[derive(DeriveIden)]
enum JobEvents {
    Table,
    Id,
    JobId,
    TaskId,
    Worker,
    Kind,
    Detail,
    AtMs,
}
