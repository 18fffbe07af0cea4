//! Benchmark support (BENCHMARKS.md, P4–P7): the naive baseline schema
//! and the on-disk size breakdown. Kept here because only `store` speaks
//! SQL.

use std::{str::FromStr, time::Duration};

use model::Span;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::backend_error;
use crate::StoreError;

/// The schema a first attempt would use (REFERENCE.md's peer figure): one
/// row per span, attributes as jsonb, three indexes; one INSERT per span.
#[derive(Debug, Clone)]
pub struct NaiveBaseline {
    pool: PgPool,
}

impl NaiveBaseline {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let opts =
            PgConnectOptions::from_str(url).map_err(|e| StoreError::Config(e.to_string()))?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(backend_error)?;
        for ddl in [
            "CREATE TABLE IF NOT EXISTS naive_spans (trace_id bytea NOT NULL, span_id bytea NOT NULL, \
             parent_id bytea, service text NOT NULL, operation text NOT NULL, start_ns bigint NOT NULL, \
             duration_ns bigint NOT NULL, status smallint NOT NULL, attributes jsonb NOT NULL, \
             resource jsonb NOT NULL, PRIMARY KEY (trace_id, span_id))",
            "CREATE INDEX IF NOT EXISTS naive_by_service ON naive_spans (service, operation, start_ns)",
            "CREATE INDEX IF NOT EXISTS naive_by_start ON naive_spans (start_ns)",
        ] {
            sqlx::query(ddl)
                .execute(&pool)
                .await
                .map_err(backend_error)?;
        }
        Ok(Self { pool })
    }

    /// One transaction per batch, one INSERT statement per span.
    pub async fn insert(&self, spans: &[Span]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend_error)?;
        for s in spans {
            let attrs = json_object(&s.attributes);
            let res = json_object(&s.resource.attributes);
            sqlx::query(
                "INSERT INTO naive_spans VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(s.trace_id.as_bytes().as_slice())
            .bind(s.span_id.as_bytes().as_slice())
            .bind(s.parent_span_id.map(|p| p.as_bytes().to_vec()))
            .bind(s.service_name())
            .bind(&s.name)
            .bind(super::clamp_i64(s.start_unix_nano))
            .bind(super::clamp_i64(s.duration_nanos()))
            .bind(i16::from(s.is_error()))
            .bind(serde_json::Value::Object(attrs))
            .bind(serde_json::Value::Object(res))
            .execute(&mut *tx)
            .await
            .map_err(backend_error)?;
        }
        tx.commit().await.map_err(backend_error)
    }
}

fn json_object(kvs: &[model::KeyValue]) -> serde_json::Map<String, serde_json::Value> {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                serde_json::Value::String(kv.value.to_search_string()),
            )
        })
        .collect()
}

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
