//! Templates as versioned data: a new version is a new row, never an update, so a job can always
//! name the exact rules it ran with.

use sea_orm_migration::prelude::*;

use crate::large::long_text;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Templates::Table)
                    .col(ColumnDef::new(Templates::Id).string_len(64).not_null())
                    .col(ColumnDef::new(Templates::Version).integer().not_null())
                    .col(long_text(manager, Templates::Body).not_null())
                    .col(
                        ColumnDef::new(Templates::CreatedAtMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Templates::CreatedBy).big_integer().null())
                    .primary_key(Index::create().col(Templates::Id).col(Templates::Version))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Templates::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum Templates {
    Table,
    Id,
    Version,
    Body,
    CreatedAtMs,
    CreatedBy,
}
