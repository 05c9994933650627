use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub job_id: i64,
    pub seq: i32,
    /// `queued`, `leased`, `done` or `failed`.
    pub status: String,
    /// JSON of `protocol::TaskData`, exactly the bytes that are hashed and sent.
    pub payload: Vec<u8>,
    pub payload_sha256: String,
    /// Fencing token: incremented on every lease, so a result from an older lease is recognised.
    pub lease: i64,
    pub lease_worker: Option<String>,
    pub lease_expires_at_ms: Option<i64>,
    pub attempts: i32,
    /// JSON of `analysis::SegmentResult` as returned by the worker.
    pub result: Option<Vec<u8>>,
    pub result_sha256: Option<String>,
    /// Distinct workers whose results must agree; 0 until the first result decides (adaptive
    /// replication may let a credible worker's result stand alone).
    pub replicas_needed: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
