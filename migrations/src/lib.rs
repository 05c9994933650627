//! VitalGrid's database schema as sea-orm migrations. The same migrations run on SQLite (the
//! default, embedded) and MySQL/MariaDB (production); they use only SeaQuery's portable builders,
//! except for the large-object columns, whose type must be chosen per backend (see `large`).

pub use sea_orm_migration::prelude::*;

mod large;
mod m20261126_000001_create_accounts;
mod m20261126_000002_create_files_and_jobs;
mod m20261126_000003_create_templates;
mod m20261126_000004_add_replication_priorities_events;
mod m20261126_140000_index_jobs_by_status;
mod m20261126_160000_count_late_results;
mod m20261127_120000_index_task_results_by_worker;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_accounts::Migration),
            Box::new(m20261126_000002_create_files_and_jobs::Migration),
            Box::new(m20261126_000003_create_templates::Migration),
            Box::new(m20261126_000004_add_replication_priorities_events::Migration),
            Box::new(m20261126_140000_index_jobs_by_status::Migration),
            Box::new(m20261126_160000_count_late_results::Migration),
            Box::new(m20261127_120000_index_task_results_by_worker::Migration),
        ]
    }
}
