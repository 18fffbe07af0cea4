//! The conformance suite every `SpanStore` backend must pass.
//!
//! `run_all(make)` runs each case against a fresh, empty store from `make`
//! and panics with the case name on the first failed assertion. Backends'
//! test files call it: `store/tests/sqlite.rs`, `store/tests/postgres.rs`
//! (two shards) and `store/tests/cassandra.rs`.

mod builder;
mod cases;
pub mod fake;
pub mod pg;

use std::{future::Future, sync::Arc};

pub use builder::{MS, SpanBuilder, T0, any_query, span_id, trace_id};

use crate::SpanStore;

type Case = (
    &'static str,
    fn(Arc<dyn SpanStore>) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
);

/// Every case, by name.
pub fn cases() -> Vec<Case> {
    cases::all()
}

/// Runs every case, each on a fresh store.
pub async fn run_all<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SpanStore>>,
{
    run_except(make, &[]).await;
}

/// Cases that need `enforce_retention` to act on the `now` it is given
/// (a backend expiring data by write-time TTL cannot pass them).
pub const RETENTION_CASES: &[&str] = cases::RETENTION_CASES;

/// Cases on derived records, which the Cassandra backend does not keep
/// yet.
pub const RECORD_CASES: &[&str] = cases::RECORD_CASES;

/// Runs every case but those named in `skip`, each on a fresh store.
pub async fn run_except<F, Fut>(make: F, skip: &[&str])
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn SpanStore>>,
{
    for (name, case) in cases().into_iter().filter(|(n, _)| !skip.contains(n)) {
        let store = make().await;
        let result = tokio::spawn(case(store)).await;
        if let Err(e) = result {
            panic!("conformance case `{name}` failed: {e}");
        }
    }
}
