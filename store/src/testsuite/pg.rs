//! Helpers for tests and benchmarks against a real Postgres server
//! (`scripts/pg.sh start` prints one; `scripts/test.sh` exports it as
//! `MERIDIAN_TEST_POSTGRES`).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use sqlx::Connection;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

/// The server URL from `MERIDIAN_TEST_POSTGRES`, or `None` (after printing
/// a skip line) when unset. With `MERIDIAN_REQUIRE_POSTGRES=1`, as the
/// README's test command sets, a missing server is a failure instead.
pub fn server_from_env(test: &str) -> Option<String> {
    match std::env::var("MERIDIAN_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_owned()),
        _ => {
            assert!(
                std::env::var("MERIDIAN_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "{test}: MERIDIAN_TEST_POSTGRES is not set but MERIDIAN_REQUIRE_POSTGRES=1"
            );
            eprintln!(
                "skipping {test}: MERIDIAN_TEST_POSTGRES is not set (scripts/test.sh starts a throwaway Postgres)"
            );
            None
        }
    }
}

static NEXT_DB: AtomicU64 = AtomicU64::new(0);

/// Creates `n` empty databases on `server` and returns their URLs.
pub async fn fresh_databases(server: &str, n: usize) -> Vec<String> {
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .expect("connect to the test Postgres");
    let mut urls = Vec::with_capacity(n);
    for _ in 0..n {
        let name = format!(
            "meridian_t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
        urls.push(format!("{server}/{name}"));
    }
    urls
}

/// A TCP proxy in front of a server that a test can cut and restore: the
/// shard behind it is then unreachable the way a network partition makes
/// it (connections reset, new ones refused).
#[derive(Debug, Clone)]
pub struct CuttableProxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl CuttableProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let down = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0u64);
        let proxy = Self { addr, down, cut };
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if p.down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = p.cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_through(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("url with scheme");
        let (auth, after) = match rest.split_once('@') {
            Some((a, r)) => (format!("{a}@"), r),
            None => (String::new(), rest),
        };
        let path = after.find('/').map_or("", |i| &after[i..]);
        format!("{scheme}://{auth}{}{path}", self.addr)
    }
}
