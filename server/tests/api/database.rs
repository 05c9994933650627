//! How the server's database pool is set up, checked on a real server.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement, TransactionTrait};
use vitalgrid_server::app::connect_database;

use crate::common::{Backend, TestDatabase, mariadb_url};

/// The isolation level a transaction on `connection` runs at, as MariaDB names it.
async fn isolation_level(connection: &impl ConnectionTrait) -> String {
    let row = connection
        .query_one(Statement::from_string(
            connection.get_database_backend(),
            "SELECT @@SESSION.tx_isolation AS level",
        ))
        .await
        .expect("reads the session's isolation level")
        .expect("one row");
    row.try_get("", "level").expect("a string")
}

/// The scheduler's transactions are written for READ COMMITTED (docs/operations.md): at MariaDB's
/// default REPEATABLE READ a dispatch round and a job submission deadlocked on gap locks. The level
/// is set when each pooled connection opens, so every connection the pool hands out must have it,
/// not only the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_of_a_mariadb_pool_runs_at_read_committed() {
    if mariadb_url().is_none() {
        return;
    }
    let database = TestDatabase::new(Backend::MariaDb).await;
    let plain = Database::connect(&database.url).await.expect("connects");
    assert_eq!(
        isolation_level(&plain).await,
        "REPEATABLE-READ",
        "the test server's default, which the pool must override"
    );

    let db: DatabaseConnection = connect_database(&database.url)
        .await
        .expect("opens and migrates");
    // Transactions held open at once each hold a connection of their own.
    let mut transactions = Vec::new();
    for _ in 0..6 {
        transactions.push(db.begin().await.expect("begins"));
    }
    for transaction in &transactions {
        assert_eq!(isolation_level(transaction).await, "READ-COMMITTED");
    }
}

/// A database server that restarts, or drops connections idle past its `wait_timeout`, leaves the
/// pool holding dead connections. The pool pings a connection that sat idle before handing it out
/// again, so the next request gets a live one instead of an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_database_dropped_while_idle_are_replaced_before_use() {
    if mariadb_url().is_none() {
        return;
    }
    let database = TestDatabase::new(Backend::MariaDb).await;
    let db = connect_database(&database.url)
        .await
        .expect("opens and migrates");
    let name = database.url.rsplit('/').next().expect("a database name");
    let admin = Database::connect(&database.url).await.expect("connects");
    let own_id = admin
        .query_one(Statement::from_string(
            admin.get_database_backend(),
            "SELECT CAST(CONNECTION_ID() AS SIGNED) AS id",
        ))
        .await
        .expect("reads its id")
        .expect("one row")
        .try_get::<i64>("", "id")
        .expect("an id");
    let pooled: Vec<i64> = admin
        .query_all(Statement::from_sql_and_values(
            admin.get_database_backend(),
            "SELECT CAST(ID AS SIGNED) AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> ?",
            [name.into(), own_id.into()],
        ))
        .await
        .expect("lists the pool's connections")
        .iter()
        .map(|row| row.try_get::<i64>("", "id").expect("an id"))
        .collect();
    assert!(!pooled.is_empty(), "the pool keeps a connection open");
    for id in &pooled {
        admin
            .execute_unprepared(&format!("KILL CONNECTION {id}"))
            .await
            .expect("drops a pooled connection");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;

    assert_eq!(isolation_level(&db).await, "READ-COMMITTED");
}
