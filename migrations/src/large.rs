//! Column types for uploads, task payloads and analyses, which run to megabytes.
//!
//! SeaQuery's portable `blob()`/`text()` become MySQL's BLOB/TEXT, which stop at 64 KiB; MySQL
//! needs the LONG variants, while SQLite's BLOB/TEXT have no such limit.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// A binary column able to hold a whole uploaded file.
pub fn long_binary(manager: &SchemaManager, column: impl IntoIden) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    match manager.get_database_backend() {
        DatabaseBackend::MySql => def.custom(Alias::new("LONGBLOB")),
        _ => def.blob(),
    };
    def
}

/// A text column able to hold a whole analysis as JSON.
pub fn long_text(manager: &SchemaManager, column: impl IntoIden) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    match manager.get_database_backend() {
        DatabaseBackend::MySql => def.custom(Alias::new("LONGTEXT")),
        _ => def.text(),
    };
    def
}
