//! Uploaded files, the jobs run on them, their tasks (the units volunteers compute) and results.

use sea_orm_migration::prelude::*;

use crate::large::{long_binary, long_text};
use crate::m20261126_000001_create_accounts::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Files::Table)
                    .col(
                        ColumnDef::new(Files::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Files::OwnerId).big_integer().not_null())
                    .col(ColumnDef::new(Files::PatientRef).string_len(64).not_null())
                    .col(ColumnDef::new(Files::FileName).string_len(255).not_null())
                    .col(ColumnDef::new(Files::Kind).string_len(16).not_null())
                    .col(ColumnDef::new(Files::TemplateId).string_len(64).not_null())
                    .col(ColumnDef::new(Files::TemplateVersion).integer().not_null())
                    .col(ColumnDef::new(Files::SizeBytes).big_integer().not_null())
                    .col(ColumnDef::new(Files::Rows).big_integer().not_null())
                    .col(ColumnDef::new(Files::Signals).text().not_null())
                    .col(ColumnDef::new(Files::IgnoredColumns).text().not_null())
                    .col(ColumnDef::new(Files::DurationS).double().not_null())
                    .col(ColumnDef::new(Files::SampleRateHz).double().not_null())
                    .col(long_binary(manager, Files::Content).not_null())
                    .col(ColumnDef::new(Files::CreatedAtMs).big_integer().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Files::Table, Files::OwnerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(
                        ColumnDef::new(Jobs::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Jobs::FileId).big_integer().not_null())
                    .col(ColumnDef::new(Jobs::OwnerId).big_integer().not_null())
                    .col(ColumnDef::new(Jobs::Algorithm).string_len(64).not_null())
                    .col(ColumnDef::new(Jobs::TemplateId).string_len(64).not_null())
                    .col(ColumnDef::new(Jobs::TemplateVersion).integer().not_null())
                    .col(ColumnDef::new(Jobs::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Jobs::TasksTotal).integer().not_null())
                    .col(ColumnDef::new(Jobs::TasksDone).integer().not_null())
                    .col(ColumnDef::new(Jobs::TrendBucketS).double().not_null())
                    .col(ColumnDef::new(Jobs::Error).text().null())
                    .col(ColumnDef::new(Jobs::CreatedAtMs).big_integer().not_null())
                    .col(ColumnDef::new(Jobs::FinishedAtMs).big_integer().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Jobs::Table, Jobs::FileId)
                            .to(Files::Table, Files::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    // Random, opaque: this id travels to volunteers and must reveal nothing.
                    .col(
                        ColumnDef::new(Tasks::Id)
                            .string_len(32)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Tasks::JobId).big_integer().not_null())
                    .col(ColumnDef::new(Tasks::Seq).integer().not_null())
                    .col(ColumnDef::new(Tasks::Status).string_len(16).not_null())
                    .col(long_binary(manager, Tasks::Payload).not_null())
                    .col(
                        ColumnDef::new(Tasks::PayloadSha256)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(Tasks::Lease).big_integer().not_null())
                    .col(ColumnDef::new(Tasks::LeaseWorker).string_len(64).null())
                    .col(ColumnDef::new(Tasks::LeaseExpiresAtMs).big_integer().null())
                    .col(ColumnDef::new(Tasks::Attempts).integer().not_null())
                    .col(long_binary(manager, Tasks::Result).null())
                    .col(ColumnDef::new(Tasks::ResultSha256).string_len(64).null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Tasks::Table, Tasks::JobId)
                            .to(Jobs::Table, Jobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_tasks_status_job_seq")
                    .table(Tasks::Table)
                    .col(Tasks::Status)
                    .col(Tasks::JobId)
                    .col(Tasks::Seq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Results::Table)
                    .col(
                        ColumnDef::new(Results::JobId)
                            .big_integer()
                            .not_null()
                            .primary_key(),
                    )
                    .col(long_text(manager, Results::Analysis).not_null())
                    .col(
                        ColumnDef::new(Results::CreatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Results::Table, Results::JobId)
                            .to(Jobs::Table, Jobs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Results::Table.into_iden(),
            Tasks::Table.into_iden(),
            Jobs::Table.into_iden(),
            Files::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Files {
    Table,
    Id,
    OwnerId,
    PatientRef,
    FileName,
    Kind,
    TemplateId,
    TemplateVersion,
    SizeBytes,
    Rows,
    Signals,
    IgnoredColumns,
    DurationS,
    SampleRateHz,
    Content,
    CreatedAtMs,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    FileId,
    OwnerId,
    Algorithm,
    TemplateId,
    TemplateVersion,
    Status,
    TasksTotal,
    TasksDone,
    TrendBucketS,
    Error,
    CreatedAtMs,
    FinishedAtMs,
}

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    JobId,
    Seq,
    Status,
    Payload,
    PayloadSha256,
    Lease,
    LeaseWorker,
    LeaseExpiresAtMs,
    Attempts,
    Result,
    ResultSha256,
}

#[derive(DeriveIden)]
enum Results {
    Table,
    JobId,
    Analysis,
    CreatedAtMs,
}
