//! The read/write pool split and the read deadline, on a file database.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use super::*;
use crate::testsuite::SpanBuilder;

/// Never ends on its own: counts up forever.
const ENDLESS: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

async fn file_store(dir: &tempfile::TempDir, limits: SqliteLimits) -> SqliteStore {
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    SqliteStore::open_with(&url, limits).await.expect("open")
}

/// Waits (yielding, no sleep-and-hope) until `done` holds.
async fn until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::task::yield_now().await;
    }
}

/// Defect 1 (SQLite). Failed on the old code emulated (one pool of 4 for
/// reads and writes, no read deadline): the write timed out waiting for a
/// connection ("pool timed out while waiting for an open connection").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_complete_while_every_read_connection_is_busy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = file_store(&dir, SqliteLimits::default()).await;
    let readers = store.read.options().get_max_connections();
    let release = Arc::new(AtomicBool::new(false));
    let mut reads = Vec::new();
    for _ in 0..readers {
        let pool = store.read.clone();
        let release = Arc::clone(&release);
        reads.push(tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            conn.lock_handle()
                .await?
                .set_progress_handler(1_000, move || !release.load(Ordering::Relaxed));
            sqlx::query(ENDLESS).fetch_one(&mut *conn).await.map(|_| ())
        }));
    }
    // Every read connection is taken by a query that runs until released.
    until(|| store.read.size() == readers && store.read.num_idle() == 0).await;

    let span = SpanBuilder::new(1, 1, "svc").build();
    let written = store.write(std::slice::from_ref(&span)).await;
    let still_reading = reads.iter().filter(|r| !r.is_finished()).count();
    release.store(true, Ordering::Relaxed);
    for r in reads {
        let _interrupted = r.await.expect("read task");
    }
    assert_eq!(written.expect("write").inserted, 1);
    assert_eq!(
        still_reading, readers as usize,
        "the write completed while every read was still in flight"
    );
    assert!(
        store
            .get_trace(span.trace_id)
            .await
            .expect("read")
            .is_some()
    );
}

/// Defect 1 (SQLite). Failed on the old code emulated (no read deadline):
/// the endless read ran until the 120 s watchdog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_past_its_deadline_is_interrupted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = file_store(
        &dir,
        SqliteLimits {
            read_deadline: Duration::from_millis(50),
            ..SqliteLimits::default()
        },
    )
    .await;
    let read = async {
        let mut r = store.reader().await?;
        let res = sqlx::query(ENDLESS)
            .fetch_one(r.conn())
            .await
            .map(|_| ())
            .map_err(backend_error);
        r.check(res)
    };
    // A watchdog only, so that a missing deadline fails instead of hanging.
    let res = tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .expect("the read was not interrupted");
    match res {
        Err(StoreError::Unavailable(msg)) => assert!(msg.contains("deadline"), "{msg}"),
        other => panic!("expected a deadline error, got {other:?}"),
    }
    // The connection is usable again, under a fresh deadline.
    assert!(
        store
            .services(&model::access::Scope::All)
            .await
            .expect("services")
            .is_empty()
    );
}

#[tokio::test]
async fn empty_pools_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let limits = SqliteLimits {
        read_connections: 0,
        ..SqliteLimits::default()
    };
    assert!(matches!(
        SqliteStore::open_with(&url, limits).await,
        Err(StoreError::Config(_))
    ));
}

#[tokio::test]
async fn a_capped_trace_keeps_the_earliest_spans() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = file_store(&dir, SqliteLimits::default()).await;
    let spans: Vec<_> = (1..=10u64)
        .rev()
        .map(|i| SpanBuilder::new(9, i, "big").at(i * 10, 1).build())
        .collect();
    store.write(&spans).await.expect("write");
    let capped = store
        .get_trace_capped(spans[0].trace_id, 3)
        .await
        .expect("get")
        .expect("stored");
    let mut earliest: Vec<_> = spans.clone();
    earliest.sort_by_key(|s| s.start_unix_nano);
    earliest.truncate(3);
    assert!(capped.truncated);
    assert_eq!(capped.trace.spans, earliest);
}
