//! The conformance suite against the embedded SQLite backend: a file
//! database (WAL, as the gateway runs it) and an in-memory one.

use std::sync::Arc;

use store::{SpanStore, sqlite::SqliteStore, testsuite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    testsuite::run_all(|| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let url = format!(
            "sqlite://{}",
            dir.path().join(format!("s{n}/m.db")).display()
        );
        async move { Arc::new(SqliteStore::open(&url).await.unwrap()) as Arc<dyn SpanStore> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_memory_passes_the_conformance_suite() {
    testsuite::run_all(|| async {
        Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap()) as Arc<dyn SpanStore>
    })
    .await;
}

#[tokio::test]
async fn reopening_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let span = testsuite::SpanBuilder::new(1, 1, "svc").build();
    {
        let s = SqliteStore::open(&url).await.unwrap();
        s.write(std::slice::from_ref(&span)).await.unwrap();
    }
    let s = SqliteStore::open(&url).await.unwrap();
    let t = s.get_trace(span.trace_id).await.unwrap().unwrap();
    assert_eq!(t.spans, vec![span]);
}
