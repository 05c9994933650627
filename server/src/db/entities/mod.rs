//! sea-orm entities, one per table (schema in the `migrations` crate). Times are milliseconds since
//! the Unix epoch: portable across SQLite and MySQL and free of time-zone conversions.

pub mod file;
pub mod job;
pub mod job_event;
pub mod result;
pub mod session;
pub mod task;
pub mod task_result;
pub mod template;
pub mod user;
pub mod worker_record;
