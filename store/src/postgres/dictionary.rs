//! The dictionaries: service, cluster and operation names stored once and
//! referred to by id, with bounded name → id caches in front of them.

use std::collections::{BTreeSet, HashMap};

use moka::future::Cache;
use sqlx::PgPool;

use super::backend_error;
use crate::StoreError;

/// `names.kind` of a service name.
pub(super) const SERVICE: i16 = 1;
/// `names.kind` of a cluster name.
pub(super) const CLUSTER: i16 = 2;

/// Name → id caches over the dictionary tables (bounded; a miss costs one
/// round trip per batch).
#[derive(Debug)]
pub(crate) struct Dictionary {
    names: Cache<(i16, String), i32>,
    ops: Cache<(i32, String, i16), i32>,
    /// (cluster id, operation id) pairs known to be in `cluster_operations`.
    cluster_ops: Cache<(i32, i32), ()>,
}

impl Dictionary {
    pub(crate) fn new() -> Self {
        Self {
            names: Cache::new(100_000),
            ops: Cache::new(200_000),
            cluster_ops: Cache::new(200_000),
        }
    }

    pub(super) async fn names(
        &self,
        pool: &PgPool,
        wanted: BTreeSet<(i16, &str)>,
    ) -> Result<HashMap<(i16, String), i32>, StoreError> {
        let wanted = wanted.into_iter().map(|(k, n)| (k, n.to_owned())).collect();
        resolve(&self.names, wanted, "dictionary names", |missing| async move {
            let kinds: Vec<i16> = missing.iter().map(|k| k.0).collect();
            let names: Vec<&str> = missing.iter().map(|k| k.1.as_str()).collect();
            let rows: Vec<(i32, i16, String)> = sqlx::query_as(
                "WITH input(kind, name) AS (SELECT * FROM unnest($1::smallint[], $2::text[])), \
                 ins AS (INSERT INTO names (kind, name) SELECT kind, name FROM input \
                         ON CONFLICT DO NOTHING RETURNING id, kind, name) \
                 SELECT id, kind, name FROM ins \
                 UNION ALL SELECT n.id, n.kind, n.name FROM names n JOIN input i USING (kind, name)",
            )
            .bind(&kinds)
            .bind(&names)
            .fetch_all(pool)
            .await
            .map_err(backend_error)?;
            Ok(rows.into_iter().map(|(id, kind, name)| ((kind, name), id)).collect())
        })
        .await
    }

    pub(super) async fn ops(
        &self,
        pool: &PgPool,
        wanted: BTreeSet<(i32, &str, i16)>,
    ) -> Result<HashMap<(i32, String, i16), i32>, StoreError> {
        let wanted = wanted
            .into_iter()
            .map(|(s, n, k)| (s, n.to_owned(), k))
            .collect();
        resolve(&self.ops, wanted, "operations", |missing| async move {
            let svcs: Vec<i32> = missing.iter().map(|k| k.0).collect();
            let names: Vec<&str> = missing.iter().map(|k| k.1.as_str()).collect();
            let kinds: Vec<i16> = missing.iter().map(|k| k.2).collect();
            let rows: Vec<(i32, i32, String, i16)> = sqlx::query_as(
                "WITH input(service_id, name, span_kind) AS \
                   (SELECT * FROM unnest($1::integer[], $2::text[], $3::smallint[])), \
                 ins AS (INSERT INTO operations (service_id, name, span_kind) \
                         SELECT service_id, name, span_kind FROM input \
                         ON CONFLICT DO NOTHING RETURNING id, service_id, name, span_kind) \
                 SELECT id, service_id, name, span_kind FROM ins \
                 UNION ALL SELECT o.id, o.service_id, o.name, o.span_kind FROM operations o \
                   JOIN input i USING (service_id, name, span_kind)",
            )
            .bind(&svcs)
            .bind(&names)
            .bind(&kinds)
            .fetch_all(pool)
            .await
            .map_err(backend_error)?;
            Ok(rows
                .into_iter()
                .map(|(id, svc, name, kind)| ((svc, name, kind), id))
                .collect())
        })
        .await
    }
}

impl Dictionary {
    /// Records that each operation of `pairs` (cluster id, operation id)
    /// was seen in that cluster, for the scoped services and operations
    /// lists. Idempotent; pairs already known cost no round trip.
    pub(super) async fn cluster_ops(
        &self,
        pool: &PgPool,
        pairs: BTreeSet<(i32, i32)>,
    ) -> Result<(), StoreError> {
        let mut missing = Vec::new();
        for pair in pairs {
            if self.cluster_ops.get(&pair).await.is_none() {
                missing.push(pair);
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let clusters: Vec<i32> = missing.iter().map(|p| p.0).collect();
        let ops: Vec<i32> = missing.iter().map(|p| p.1).collect();
        sqlx::query(
            "INSERT INTO cluster_operations (cluster_id, op_id) \
             SELECT * FROM unnest($1::integer[], $2::integer[]) ON CONFLICT DO NOTHING",
        )
        .bind(&clusters)
        .bind(&ops)
        .execute(pool)
        .await
        .map_err(backend_error)?;
        for pair in missing {
            self.cluster_ops.insert(pair, ()).await;
        }
        Ok(())
    }
}

/// Ids for `wanted` keys: from `cache`, else from `fetch` (which inserts
/// what is new and returns the ids of the keys it is given). A key another
/// gateway inserted concurrently is not visible to that statement's
/// snapshot, so what is still missing is asked for again, up to 3 times.
async fn resolve<K, F, Fut>(
    cache: &Cache<K, i32>,
    wanted: Vec<K>,
    what: &str,
    fetch: F,
) -> Result<HashMap<K, i32>, StoreError>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    F: Fn(Vec<K>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(K, i32)>, StoreError>>,
{
    let mut out = HashMap::with_capacity(wanted.len());
    let mut missing = Vec::new();
    for key in wanted {
        match cache.get(&key).await {
            Some(id) => {
                out.insert(key, id);
            }
            None => missing.push(key),
        }
    }
    for _ in 0..3 {
        if missing.is_empty() {
            return Ok(out);
        }
        for (key, id) in fetch(missing.clone()).await? {
            cache.insert(key.clone(), id).await;
            out.insert(key, id);
        }
        missing.retain(|k| !out.contains_key(k));
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(StoreError::Unavailable(format!(
            "{} {what} could not be resolved; retry",
            missing.len()
        )))
    }
}
