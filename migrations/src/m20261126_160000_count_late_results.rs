//! A worker's record counts the results it sent too late (after its task was reassigned) or
//! twice: they are never applied, but an admin deciding whom to trust should see them.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WorkerRecords::Table)
                    .add_column(
                        ColumnDef::new(WorkerRecords::LateResults)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WorkerRecords::Table)
                    .drop_column(WorkerRecords::LateResults)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum WorkerRecords {
    Table,
    LateResults,
}
