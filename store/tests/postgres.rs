//! The Postgres backend against a real server (`MERIDIAN_TEST_POSTGRES`,
//! started by scripts/test.sh): the conformance suite over two shards,
//! concurrent migrations, and a shard cut off mid-flight.

#![allow(clippy::unwrap_used)]

use std::{collections::BTreeSet, net::SocketAddr, sync::Arc};

use model::TraceQuery;
use store::{
    SpanStore, StoreError, StoreOptions,
    postgres::PgStore,
    shard::ShardMap,
    testsuite::{self, SpanBuilder as B, pg, trace_id},
};
use telemetry::clock::unix_nanos;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_shards_pass_the_conformance_suite() {
    let Some(server) = pg::server_from_env("postgres conformance") else {
        return;
    };
    testsuite::run_all(|| {
        let server = server.clone();
        async move {
            let urls = pg::fresh_databases(&server, 2).await;
            store::open(&urls, &StoreOptions::default()).await.unwrap()
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_postgres_shard_passes_the_conformance_suite() {
    let Some(server) = pg::server_from_env("postgres conformance") else {
        return;
    };
    testsuite::run_all(|| {
        let server = server.clone();
        async move {
            let urls = pg::fresh_databases(&server, 1).await;
            Arc::new(
                PgStore::open(0, &urls[0], &StoreOptions::default())
                    .await
                    .unwrap(),
            ) as Arc<dyn SpanStore>
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_starting_together_migrate_once() {
    let Some(server) = pg::server_from_env("postgres migrations") else {
        return;
    };
    let url = pg::fresh_databases(&server, 1).await.remove(0);
    let opens = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PgStore::open(0, &url, &StoreOptions::default()).await })
    });
    let stores: Vec<PgStore> = futures::future::join_all(opens)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    // All four can write the same spans; each is stored once.
    let spans: Vec<_> = (1..=10).map(|i| B::new(1, i, "svc").build()).collect();
    let mut inserted = 0;
    for s in &stores {
        inserted += s.write(&spans).await.unwrap().inserted;
    }
    assert_eq!(inserted, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_of_the_same_spans_store_them_once() {
    let Some(server) = pg::server_from_env("postgres concurrent writers") else {
        return;
    };
    let url = pg::fresh_databases(&server, 1).await.remove(0);
    let store = Arc::new(
        PgStore::open(0, &url, &StoreOptions::default())
            .await
            .unwrap(),
    );
    let spans: Arc<Vec<_>> = Arc::new(
        (0..2_000u64)
            .map(|i| B::new(i % 50 + 1, i / 50 + 1, "svc").build())
            .collect(),
    );
    // Four writers replay the same batch at once; losers of a race are
    // told to retry, as an agent would.
    let writers = (0..4).map(|_| {
        let (store, spans) = (store.clone(), spans.clone());
        tokio::spawn(async move {
            loop {
                match store.write(&spans).await {
                    Ok(o) => return o.inserted,
                    Err(StoreError::Unavailable(_)) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        })
    });
    let total: u64 = futures::future::join_all(writers)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .sum();
    assert_eq!(total, 2_000);
    let mut stored = 0;
    for t in 1..=50 {
        stored += store
            .get_trace(trace_id(t))
            .await
            .unwrap()
            .unwrap()
            .spans
            .len();
    }
    assert_eq!(stored, 2_000);
}

fn host_port(server: &str) -> SocketAddr {
    let rest = server.split_once("://").unwrap().1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap();
    hostport.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_down_refuses_its_traces_and_loses_nothing() {
    let Some(server) = pg::server_from_env("postgres shard down") else {
        return;
    };
    let urls = pg::fresh_databases(&server, 2).await;
    let proxy = pg::CuttableProxy::start(host_port(&server)).await;
    let urls = vec![urls[0].clone(), proxy.url_through(&urls[1])];
    let store = store::open(&urls, &StoreOptions::default()).await.unwrap();
    let map = ShardMap::single_epoch(2).unwrap();
    let now = unix_nanos();
    let batch = |from: u64, to: u64| -> Vec<_> {
        (from..to)
            .map(|t| B::new(t, 1, "api").at_unix(now - 1_000_000_000, 1).build())
            .collect()
    };
    assert_eq!(store.write(&batch(1, 101)).await.unwrap().inserted, 100);

    proxy.cut();
    let second = batch(101, 201);
    let err = store.write(&second).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    let on = |shard: u32| -> Vec<u64> {
        (101..201)
            .filter(|t| map.route(trace_id(*t), now) == shard)
            .collect()
    };
    let (healthy, cut) = (on(0), on(1));
    assert!(!healthy.is_empty() && !cut.is_empty());
    // The healthy shard took its part of the refused batch.
    for t in &healthy {
        assert!(store.get_trace(trace_id(*t)).await.unwrap().is_some());
    }
    assert!(matches!(
        store.get_trace(trace_id(cut[0])).await,
        Err(StoreError::Unavailable(_))
    ));
    let q = TraceQuery {
        service: None,
        operation: None,
        span_kind: None,
        tags: Vec::new(),
        start_min_unix_nano: now - 3_600_000_000_000,
        start_max_unix_nano: now,
        duration_min_nanos: None,
        duration_max_nanos: None,
        limit: 1_000,
        scope: model::access::Scope::All,
    };
    let partial = store.search(&q).await.unwrap();
    assert_eq!(partial.warnings.len(), 1, "{:?}", partial.warnings);
    assert!(partial.warnings[0].contains("shard 1"));
    let shard0: BTreeSet<_> = (1..201)
        .filter(|t| map.route(trace_id(*t), now) == 0)
        .map(trace_id)
        .collect();
    let got: BTreeSet<_> = partial.traces.iter().map(|t| t.trace_id).collect();
    assert_eq!(got, shard0, "everything the healthy shard holds");
    assert!(
        store.find_traces(&q).await.is_err(),
        "find_traces wants all shards"
    );
    assert!(store.ping().await.is_ok(), "ready while a shard answers");

    // The shard returns; the agent's retry of the whole batch stores the
    // rest, and what the healthy shard took counts as duplicates.
    proxy.restore();
    let retry = store.write(&second).await.unwrap();
    assert_eq!(
        (retry.inserted, retry.duplicates),
        (cut.len() as u64, healthy.len() as u64)
    );
    let all = store.search(&q).await.unwrap();
    assert!(all.warnings.is_empty());
    assert_eq!(all.traces.len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_starts_while_a_shard_is_down() {
    let Some(server) = pg::server_from_env("postgres start with a shard down") else {
        return;
    };
    // A fresh database behind a cut path: never migrated yet.
    let urls = pg::fresh_databases(&server, 2).await;
    let proxy = pg::CuttableProxy::start(host_port(&server)).await;
    proxy.cut();
    let urls = vec![urls[0].clone(), proxy.url_through(&urls[1])];
    let store = store::open(&urls, &StoreOptions::default()).await.unwrap();
    let map = ShardMap::single_epoch(2).unwrap();
    let now = unix_nanos();
    let spans: Vec<_> = (1..=40)
        .map(|t| B::new(t, 1, "api").at_unix(now, 1).build())
        .collect();
    let on_cut = spans
        .iter()
        .filter(|s| map.route(s.trace_id, now) == 1)
        .count() as u64;
    assert!(on_cut > 0);
    assert!(matches!(
        store.write(&spans).await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(store.ping().await.is_ok(), "ready on the healthy shard");
    assert_eq!(
        store.services(&model::access::Scope::All).await.unwrap(),
        ["api"]
    );

    // The shard comes back: it is migrated on first use and takes its part.
    proxy.restore();
    let retry = store.write(&spans).await.unwrap();
    assert_eq!((retry.inserted, retry.duplicates), (on_cut, 40 - on_cut));
    for t in 1..=40 {
        assert!(store.get_trace(trace_id(t)).await.unwrap().is_some());
    }
}

/// Defect 9 of the hostile-input issue: every write of a trace used to
/// re-read and rewrite the summary row's `span_ids`, every span id the
/// trace had (O(N²) bytes over a trace's life). The summary row must not
/// grow with the trace's spans, and the check that skips stored spans
/// must still be exact, across batches and for a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_trace_keeps_its_summary_small_and_its_spans_once() {
    let Some(server) = pg::server_from_env("postgres hot trace") else {
        return;
    };
    let url = pg::fresh_databases(&server, 1).await.remove(0);
    let store = PgStore::open(0, &url, &StoreOptions::default())
        .await
        .unwrap();
    let span = |i: u64| B::new(9, i + 1, "svc").at(i, 1).build();
    let mut inserted = 0;
    for b in 0..100u64 {
        let batch: Vec<_> = (b * 50..(b + 1) * 50).map(span).collect();
        inserted += store.write(&batch).await.unwrap().inserted;
    }
    assert_eq!(inserted, 5_000);
    // A batch half stored, half new: only the new half is stored.
    let mixed: Vec<_> = (4_975..5_025).map(span).collect();
    let o = store.write(&mixed).await.unwrap();
    assert_eq!((o.inserted, o.duplicates), (25, 25));
    // A replay of everything stores nothing.
    let all: Vec<_> = (0..5_025).map(span).collect();
    assert_eq!(store.write(&all).await.unwrap().inserted, 0);
    let trace = store.get_trace(trace_id(9)).await.unwrap().unwrap();
    assert_eq!(trace.spans.len(), 5_025);

    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let (count, row_bytes): (i32, i32) =
        sqlx::query_as("SELECT span_count, pg_column_size(t.*)::integer FROM traces t")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(count, 5_025);
    // 5,025 span ids are 40 kB; the summary row holds none of them.
    assert!(
        row_bytes < 2_000,
        "the summary row of a 5,025-span trace is {row_bytes} bytes"
    );
}

/// Rows written before migration 0003 keep their span ids in the summary
/// (their chunks have none): writers still honour them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_stored_before_the_chunk_span_ids_are_still_skipped() {
    let Some(server) = pg::server_from_env("postgres legacy span ids") else {
        return;
    };
    let url = pg::fresh_databases(&server, 1).await.remove(0);
    let store = PgStore::open(0, &url, &StoreOptions::default())
        .await
        .unwrap();
    let spans: Vec<_> = (1..=20).map(|i| B::new(3, i, "svc").build()).collect();
    assert_eq!(store.write(&spans).await.unwrap().inserted, 20);
    // Make the rows look as the old writer left them.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE traces SET span_ids = (SELECT array_agg(x) FROM chunks, unnest(chunks.span_ids) x)",
    )
    .execute(&mut db)
    .await
    .unwrap();
    sqlx::query("UPDATE chunks SET span_ids = NULL")
        .execute(&mut db)
        .await
        .unwrap();
    let more: Vec<_> = (11..=30).map(|i| B::new(3, i, "svc").build()).collect();
    let o = store.write(&more).await.unwrap();
    assert_eq!((o.inserted, o.duplicates), (10, 10));
    let trace = store.get_trace(trace_id(3)).await.unwrap().unwrap();
    assert_eq!(trace.spans.len(), 30);
}
