use sea_orm::entity::prelude::*;

/// One worker's answer to one task; several per task under replication.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "task_results")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub task_id: String,
    pub lease: i64,
    pub worker_key: String,
    pub result_sha256: String,
    pub result: Vec<u8>,
    pub received_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
