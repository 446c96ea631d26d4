//! The writing connection on its own, on a real SQLite file: binding,
//! rows, errors, the statement cache, transactions dropped half way, and
//! waiting for a lock another connection holds without blocking the thread.

use std::path::PathBuf;
use std::time::Duration;

use sqlx::Row;
use sqlx::error::ErrorKind;
use sqlx_core::any::AnyValueKind;

use super::direct_sqlite::{CACHED, DirectSqlite, Step};
use super::write_tx::{DirectTx, WriteTx};

/// A fresh database file, removed (with its log) when dropped.
struct File(PathBuf);

impl File {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "flowmesh-writer-{name}-{}-{}.db",
            std::process::id(),
            uuid::Uuid::now_v7()
        ));
        Self(path)
    }

    fn open(&self) -> DirectSqlite {
        DirectSqlite::open(
            &self.0,
            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 0;",
        )
        .expect("opens")
    }
}

impl Drop for File {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

fn rows(steps: Vec<Step>) -> Vec<sqlx::any::AnyRow> {
    steps.into_iter().filter_map(|step| step.right()).collect()
}

fn text(value: &str) -> AnyValueKind {
    AnyValueKind::Text(std::sync::Arc::new(value.to_string()))
}

fn count(writer: &mut DirectSqlite) -> i64 {
    let found = rows(
        writer
            .run("SELECT COUNT(*) AS n FROM t", &[], true)
            .expect("counts"),
    );
    found[0].try_get::<i64, _>("n").expect("a count")
}

#[test]
fn numbered_and_bare_marks_bind_and_rows_read_by_storage_class() {
    let file = File::new("bind");
    let mut writer = file.open();
    writer
        .run(
            "CREATE TABLE t (a INTEGER, b TEXT, c REAL, d TEXT)",
            &[],
            false,
        )
        .expect("creates");
    let steps = writer
        .run(
            "INSERT INTO t (b, a, c, d) VALUES ($2, $1, $3, $4); INSERT INTO t (a, b) VALUES (?5, 'x')",
            &[
                AnyValueKind::BigInt(7),
                text("seven"),
                AnyValueKind::Double(0.5),
                AnyValueKind::Null(sqlx::any::AnyTypeInfoKind::Text),
                AnyValueKind::Integer(8),
            ],
            true,
        )
        .expect("inserts");
    let changed: Vec<u64> = steps
        .iter()
        .filter_map(|step| step.as_ref().left().map(|done| done.rows_affected))
        .collect();
    assert_eq!(changed, [1, 1]);
    let found = rows(
        writer
            .run("SELECT a, b, c, d FROM t ORDER BY a", &[], true)
            .expect("reads"),
    );
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].try_get::<i64, _>("a").expect("a"), 7);
    assert_eq!(found[0].try_get::<String, _>("b").expect("b"), "seven");
    assert_eq!(found[0].try_get::<f64, _>("c").expect("c"), 0.5);
    assert_eq!(found[0].try_get::<Option<String>, _>("d").expect("d"), None);
    assert_eq!(found[1].try_get::<i64, _>("a").expect("a"), 8);
    assert!(
        found[0].try_get::<String, _>("a").is_err(),
        "an integer is not read as text"
    );
    // Reading changes nothing.
    let steps = writer.run("SELECT 1", &[], true).expect("reads");
    assert_eq!(
        steps
            .last()
            .and_then(|step| step.as_ref().left())
            .map(|done| done.rows_affected),
        Some(0)
    );
}

#[test]
fn a_broken_constraint_is_a_database_error_of_its_kind() {
    let file = File::new("constraint");
    let mut writer = file.open();
    writer
        .run("CREATE TABLE t (id TEXT PRIMARY KEY)", &[], false)
        .expect("creates");
    writer
        .run("INSERT INTO t VALUES ($1)", &[text("a")], true)
        .expect("inserts");
    let Err(sqlx::Error::Database(error)) =
        writer.run("INSERT INTO t VALUES ($1)", &[text("a")], true)
    else {
        panic!("a second row of the same key is refused");
    };
    assert_eq!(error.kind(), ErrorKind::UniqueViolation);
    assert!(error.message().contains("UNIQUE"), "{}", error.message());
    // The statement stays usable.
    writer
        .run("INSERT INTO t VALUES ($1)", &[text("b")], true)
        .expect("inserts again");
    assert_eq!(count(&mut writer), 2);
    assert!(matches!(
        writer.run("SELECT * FROM missing", &[], true),
        Err(sqlx::Error::Database(_))
    ));
}

#[test]
fn the_cache_keeps_its_bound_and_runs_an_evicted_statement_again() {
    let file = File::new("cache");
    let mut writer = file.open();
    for n in 0..CACHED + 8 {
        let found = rows(
            writer
                .run(&format!("SELECT {n} AS n"), &[], true)
                .expect("runs"),
        );
        assert_eq!(found[0].try_get::<i64, _>("n").expect("n"), n as i64);
    }
    assert!(
        format!("{writer:?}").contains(&format!("cached: {CACHED}")),
        "{writer:?}"
    );
    let found = rows(writer.run("SELECT 0 AS n", &[], true).expect("runs again"));
    assert_eq!(found[0].try_get::<i64, _>("n").expect("n"), 0);
}

/// A transaction begun on `writer` that has inserted a row.
async fn with_a_row(writer: &mut DirectSqlite) -> WriteTx<'_> {
    let tx = DirectTx::begin(writer, "BEGIN IMMEDIATE")
        .await
        .expect("begins");
    let mut tx = WriteTx::Direct(tx);
    sqlx::query("INSERT INTO t VALUES (1)")
        .execute(&mut tx)
        .await
        .expect("inserts");
    tx
}

#[tokio::test(flavor = "current_thread")]
async fn a_transaction_dropped_half_way_leaves_nothing() {
    let file = File::new("dropped");
    let mut writer = file.open();
    writer
        .run("CREATE TABLE t (id INTEGER)", &[], false)
        .expect("creates");
    drop(with_a_row(&mut writer).await);
    assert!(!writer.in_transaction());
    assert_eq!(count(&mut writer), 0);
    with_a_row(&mut writer)
        .await
        .commit()
        .await
        .expect("commits");
    assert_eq!(count(&mut writer), 1);
}

/// On a single-threaded runtime: had the wait for the lock blocked the
/// thread, the other connection could never let go of it.
#[tokio::test(flavor = "current_thread")]
async fn a_lock_held_elsewhere_is_waited_for_asleep() {
    let file = File::new("locked");
    let mut other = file.open();
    other
        .run("CREATE TABLE t (id INTEGER)", &[], false)
        .expect("creates");
    other.run("BEGIN IMMEDIATE", &[], true).expect("locks");
    let mut writer = file.open();
    let waiting = tokio::spawn(async move {
        let tx = DirectTx::begin(&mut writer, "BEGIN IMMEDIATE").await;
        let began = tx.is_ok();
        drop(tx);
        (began, count(&mut writer))
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "the lock is still held");
    other
        .run("INSERT INTO t VALUES (1)", &[], true)
        .expect("inserts");
    other.run("COMMIT", &[], true).expect("unlocks");
    let (began, seen) = waiting.await.expect("the waiting task ends");
    assert!(began);
    assert_eq!(seen, 1, "it began after the other's commit");
}

#[test]
fn a_text_may_create_what_its_later_statements_use() {
    let file = File::new("lazy");
    let mut writer = file.open();
    let steps = writer
        .run(
            "CREATE TABLE t (id INTEGER); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)",
            &[],
            true,
        )
        .expect("each statement is prepared once the one before it has run");
    let ids: Vec<Option<i64>> = steps
        .iter()
        .filter_map(|step| step.as_ref().left().map(|done| done.last_insert_id))
        .collect();
    assert_eq!(ids, [None, Some(1), Some(2)]);
    assert_eq!(count(&mut writer), 2);
    assert!(matches!(
        writer.run("SELECT 1;\0 SELECT 2", &[], false),
        Err(sqlx::Error::Protocol(_))
    ));
}

/// The directly driven connections open the file the pools open: the one
/// the URL names once percent-decoded. An in-memory database would be a
/// different one for each of them, and is refused.
#[tokio::test(flavor = "current_thread")]
async fn every_connection_of_a_store_opens_the_same_file() {
    use super::{NewToken, Store, StoreError};
    let dir = std::env::temp_dir().join(format!("flowmesh writer {}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let encoded = format!("sqlite://{}/flow%20mesh.db", dir.display()).replace(' ', "%20");
    let store = Store::open(&encoded).await.expect("opens");
    store
        .create_token(
            &NewToken {
                tenant: "t",
                role: flowmesh_types::api::Role::Admin,
                name: None,
                shared: false,
                expires_at: None,
            },
            1_000,
        )
        .await
        .expect("written through the writing connection");
    assert_eq!(store.admin_token_count().await.expect("read"), 1);
    store.close().await;
    assert!(dir.join("flow mesh.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
    assert!(matches!(
        Store::open("sqlite://:memory:").await,
        Err(StoreError::UnsupportedUrl(_))
    ));
}
