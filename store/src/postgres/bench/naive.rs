//! The naive baseline (BENCHMARKS.md, P4): the schema a first attempt
//! would use, to compare the real one against.

use std::{str::FromStr, time::Duration};

use model::Span;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{StoreError, postgres::backend_error};

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
            .bind(crate::postgres::clamp_i64(s.start_unix_nano))
            .bind(crate::postgres::clamp_i64(s.duration_nanos()))
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
