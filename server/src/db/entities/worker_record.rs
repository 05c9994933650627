use sea_orm::entity::prelude::*;

/// A worker's track record, keyed by the key it presents in Hello.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "worker_records")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub worker_key: String,
    pub agreed: i64,
    pub disagreed: i64,
    /// Results it sent after its task had moved on (reassigned, or answered already): never
    /// applied, but a sign of an unreliable or replaying worker.
    pub late_results: i64,
    pub banned: bool,
    pub first_seen_at_ms: i64,
    pub last_seen_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
