use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub file_id: i64,
    pub owner_id: i64,
    pub algorithm: String,
    pub template_id: String,
    pub template_version: i32,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    pub tasks_total: i32,
    pub tasks_done: i32,
    pub trend_bucket_s: f64,
    pub error: Option<String>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// `urgent`, `normal` or `batch`.
    pub priority: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
