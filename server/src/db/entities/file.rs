use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "files")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub owner_id: i64,
    pub patient_ref: String,
    pub file_name: String,
    pub kind: String,
    pub template_id: String,
    pub template_version: i32,
    pub size_bytes: i64,
    pub rows: i64,
    /// JSON array of canonical signal names.
    pub signals: String,
    /// JSON array of column headers that were not recognised.
    pub ignored_columns: String,
    pub duration_s: f64,
    pub sample_rate_hz: f64,
    pub content: Vec<u8>,
    pub created_at_ms: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
