//! Benchmark support (BENCHMARKS.md, P4–P7): the naive baseline schema,
//! the raw `COPY` ceiling and the on-disk size breakdown. Kept here because
//! only `store` speaks SQL; compiled only with the `testsuite` feature.

mod ceiling;
mod naive;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub use ceiling::CeilingRows;
pub use naive::NaiveBaseline;

use crate::{StoreError, postgres::backend_error};

/// Runs `VACUUM (ANALYZE)` on the database at `url`, then returns the
/// bytes of each part of the Meridian schema: (part, bytes), parts being
/// table heaps, TOAST and each index, summed over the day partitions.
pub async fn vacuum_and_sizes(url: &str) -> Result<Vec<(String, i64)>, StoreError> {
    let opts = PgConnectOptions::from_str(url).map_err(|e| StoreError::Config(e.to_string()))?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(opts.options([("statement_timeout", "0")]))
        .await
        .map_err(backend_error)?;
    sqlx::query("VACUUM (ANALYZE)")
        .execute(&pool)
        .await
        .map_err(backend_error)?;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "WITH rels AS ( \
           SELECT regexp_replace(c.relname, '_p[0-9]+', '') AS part, c.oid, c.reltoastrelid \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i') \
         ) \
         SELECT part, SUM(pg_relation_size(oid) + \
           CASE WHEN reltoastrelid <> 0 THEN pg_total_relation_size(reltoastrelid) ELSE 0 END)::bigint \
         FROM rels GROUP BY part ORDER BY 2 DESC",
    )
    .fetch_all(&pool)
    .await
    .map_err(backend_error)?;
    Ok(rows)
}
