//! Two pools over one database file, so queries never starve ingest:
//!
//! - the **write** pool serves writes, retention and record updates (and
//!   `ping`, as readiness means "can accept writes");
//! - the **read** pool serves searches, trace loads and record scans. Each
//!   read runs under a deadline: a progress handler installed when the
//!   connection is taken interrupts the statement once the deadline passes,
//!   and the read fails with `StoreError::Unavailable`.
//!
//! In WAL mode readers never block the writer, so a read pool full of slow
//! queries leaves the write pool free. `:memory:` has one connection
//! shared by both (every connection to it is a separate database) and no
//! read deadline.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use sqlx::{Sqlite, SqliteConnection, SqlitePool, pool::PoolConnection};

use super::backend_error;
use crate::StoreError;

/// Virtual machine steps between two deadline checks.
const PROGRESS_STEPS: i32 = 10_000;

/// Connection counts and the read deadline of the SQLite backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteLimits {
    /// Connections writing (SQLite serialises writers; 2 lets one commit
    /// while the next batch prepares).
    pub write_connections: u32,
    /// Connections reading; a query waits when all are busy.
    pub read_connections: u32,
    /// How long one read statement may run before it is interrupted.
    pub read_deadline: Duration,
}

impl Default for SqliteLimits {
    fn default() -> Self {
        Self {
            write_connections: 2,
            read_connections: 3,
            read_deadline: Duration::from_secs(30),
        }
    }
}

/// A read connection under a deadline. Map every result through
/// [`ReadConn::check`] so an interrupted statement reads as a deadline.
pub(crate) struct ReadConn {
    conn: PoolConnection<Sqlite>,
    expired: Arc<AtomicBool>,
    deadline: Option<Duration>,
}

impl ReadConn {
    /// Takes a read connection; with `deadline`, its statements are
    /// interrupted once it has passed.
    pub(crate) async fn acquire(
        pool: &SqlitePool,
        deadline: Option<Duration>,
    ) -> Result<Self, StoreError> {
        let mut conn = pool.acquire().await.map_err(backend_error)?;
        let expired = Arc::new(AtomicBool::new(false));
        if let Some(d) = deadline {
            let at = Instant::now() + d;
            let flag = Arc::clone(&expired);
            conn.lock_handle()
                .await
                .map_err(backend_error)?
                .set_progress_handler(PROGRESS_STEPS, move || {
                    let go_on = Instant::now() < at;
                    if !go_on {
                        flag.store(true, Ordering::Relaxed);
                    }
                    go_on
                });
        }
        Ok(Self {
            conn,
            expired,
            deadline,
        })
    }

    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    /// `r`, with an error caused by the deadline said as such.
    pub(crate) fn check<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        match r {
            Err(e) if self.expired.load(Ordering::Relaxed) => {
                tracing::warn!(error = %e, deadline = ?self.deadline, "sqlite read interrupted at its deadline");
                Err(StoreError::Unavailable(format!(
                    "the query ran past its deadline of {:?}",
                    self.deadline.unwrap_or_default()
                )))
            }
            other => other,
        }
    }
}
