//! The cases, one file per concept; each case gets a fresh, empty store.
//! The list below is the order they run in, and their names are what
//! [`RETENTION_CASES`] and [`RECORD_CASES`] refer to.

mod read;
mod records;
mod retention;
mod scope;
mod search;
mod write;

use std::sync::Arc;

use model::{TagFilter, TraceQuery};

use self::{
    read::{capped_trace_keeps_the_earliest_spans, missing_trace_is_none, services_and_operations},
    records::{records_put_scan_and_expire, red_records_keep_their_own_retention},
    retention::{retention_by_cluster, storage_usage_per_cluster},
    scope::{lists_answer_for_the_scope, search_never_counts_a_hidden_trace},
    search::{
        find_by_service_and_operation, find_by_tags, limit_and_most_recent_first,
        tags_must_match_within_one_span, time_window_and_durations,
    },
    write::{
        large_batch, many_traces_in_one_batch, rewrite_is_idempotent,
        roundtrip_preserves_every_field,
    },
};
use super::{Case, SpanBuilder as B};
use crate::SpanStore;

macro_rules! cases {
    ($($name:ident),+ $(,)?) => {
        pub(super) fn all() -> Vec<Case> {
            vec![$((stringify!($name), |s| Box::pin($name(s)))),+]
        }
    };
}

cases!(
    roundtrip_preserves_every_field,
    rewrite_is_idempotent,
    missing_trace_is_none,
    capped_trace_keeps_the_earliest_spans,
    services_and_operations,
    find_by_service_and_operation,
    find_by_tags,
    tags_must_match_within_one_span,
    time_window_and_durations,
    limit_and_most_recent_first,
    lists_answer_for_the_scope,
    search_never_counts_a_hidden_trace,
    many_traces_in_one_batch,
    large_batch,
    retention_by_cluster,
    storage_usage_per_cluster,
    records_put_scan_and_expire,
    red_records_keep_their_own_retention,
);

/// Cases that need [`SpanStore::enforce_retention`] to act on the `now` it
/// is given; a backend that expires data by write-time TTL skips them.
pub(super) const RETENTION_CASES: &[&str] = &["retention_by_cluster"];

/// Cases on derived records ([`crate::Record`]), which not every backend
/// keeps.
pub(super) const RECORD_CASES: &[&str] = &[
    "records_put_scan_and_expire",
    "red_records_keep_their_own_retention",
];

fn query() -> TraceQuery {
    super::any_query()
}

fn tag(k: &str, v: &str) -> TagFilter {
    TagFilter {
        key: k.to_owned(),
        value: v.to_owned(),
    }
}

async fn found(store: &Arc<dyn SpanStore>, q: &TraceQuery) -> Vec<u64> {
    store
        .find_traces(q)
        .await
        .expect("find_traces")
        .iter()
        .map(|t| {
            let mut low = [0u8; 8];
            low.copy_from_slice(&t.trace_id.as_bytes()[8..]);
            u64::from_be_bytes(low)
        })
        .collect()
}
