//! CQL text: the schema file as statements, the keyspace, and every
//! prepared statement qualified with the keyspace.

use super::url::Keyspace;

/// The schema, applied at open after `USE <keyspace>`.
pub(crate) const SCHEMA: &str = include_str!("../../../migrations/cassandra/0001_schema.cql");

/// `CREATE KEYSPACE IF NOT EXISTS` for the URL's keyspace.
pub(crate) fn create_keyspace(ks: &Keyspace, replication_factor: u32) -> String {
    format!(
        "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': '{replication_factor}'}} AND durable_writes = true",
        ks.as_str()
    )
}

/// The schema file as separate statements: `--` comments dropped, split
/// on `;`.
pub(crate) fn schema_statements(schema: &str) -> Vec<String> {
    let text: String = schema
        .lines()
        .map(|l| l.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

/// The CQL text of every prepared statement, qualified with the keyspace.
#[derive(Debug, Clone)]
pub(crate) struct Statements {
    pub(crate) insert_span: String,
    pub(crate) existing_spans: String,
    pub(crate) trace_bodies: String,
    pub(crate) insert_service_name: String,
    pub(crate) insert_operation_name: String,
    pub(crate) insert_cluster_operation_name: String,
    pub(crate) insert_service_name_index: String,
    pub(crate) insert_service_operation_index: String,
    pub(crate) insert_duration_index: String,
    pub(crate) insert_tag_index: String,
    pub(crate) add_usage: String,
    pub(crate) select_services: String,
    pub(crate) select_operations: String,
    pub(crate) select_operations_of_kind: String,
    pub(crate) select_cluster_services: String,
    pub(crate) select_cluster_operations: String,
    pub(crate) query_service_name_index: String,
    pub(crate) query_service_operation_index: String,
    pub(crate) query_duration_index: String,
    pub(crate) query_tag_index: String,
    pub(crate) select_usage: String,
}

impl Statements {
    pub(crate) fn new(ks: &Keyspace) -> Self {
        let k = ks.as_str();
        Self {
            insert_span: format!(
                "INSERT INTO {k}.spans (trace_id, span_id, start_time, duration, service_name, operation_name, span_kind, cluster, body) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"
            ),
            existing_spans: format!(
                "SELECT span_id FROM {k}.spans WHERE trace_id = ? AND span_id IN ?"
            ),
            trace_bodies: format!("SELECT body FROM {k}.spans WHERE trace_id = ?"),
            insert_service_name: format!(
                "INSERT INTO {k}.service_names (service_name) VALUES (?) USING TTL ?"
            ),
            insert_operation_name: format!(
                "INSERT INTO {k}.operation_names (service_name, span_kind, operation_name) VALUES (?, ?, ?) USING TTL ?"
            ),
            insert_cluster_operation_name: format!(
                "INSERT INTO {k}.cluster_operation_names (cluster, service_name, span_kind, operation_name) VALUES (?, ?, ?, ?) USING TTL ?"
            ),
            insert_service_name_index: format!(
                "INSERT INTO {k}.service_name_index (service_name, bucket, start_time, trace_id) VALUES (?, ?, ?, ?) USING TTL ?"
            ),
            insert_service_operation_index: format!(
                "INSERT INTO {k}.service_operation_index (service_name, operation_name, bucket, start_time, trace_id) VALUES (?, ?, ?, ?, ?) USING TTL ?"
            ),
            insert_duration_index: format!(
                "INSERT INTO {k}.duration_index (service_name, operation_name, hour_bucket, duration, start_time, trace_id) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
            ),
            insert_tag_index: format!(
                "INSERT INTO {k}.tag_index (service_name, tag_key, tag_value, bucket, start_time, trace_id) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
            ),
            add_usage: format!(
                "UPDATE {k}.usage SET spans = spans + ?, body_bytes = body_bytes + ? WHERE cluster = ? AND day_bucket = ?"
            ),
            select_services: format!("SELECT service_name FROM {k}.service_names"),
            select_operations: format!(
                "SELECT span_kind, operation_name FROM {k}.operation_names WHERE service_name = ?"
            ),
            select_operations_of_kind: format!(
                "SELECT span_kind, operation_name FROM {k}.operation_names WHERE service_name = ? AND span_kind = ?"
            ),
            select_cluster_services: format!(
                "SELECT service_name FROM {k}.cluster_operation_names WHERE cluster = ?"
            ),
            select_cluster_operations: format!(
                "SELECT span_kind, operation_name FROM {k}.cluster_operation_names WHERE cluster = ? AND service_name = ?"
            ),
            query_service_name_index: format!(
                "SELECT start_time, trace_id FROM {k}.service_name_index WHERE service_name = ? AND bucket = ? \
                 AND start_time >= ? AND start_time <= ? LIMIT ?"
            ),
            query_service_operation_index: format!(
                "SELECT start_time, trace_id FROM {k}.service_operation_index WHERE service_name = ? AND operation_name = ? \
                 AND bucket = ? AND start_time >= ? AND start_time <= ? LIMIT ?"
            ),
            query_duration_index: format!(
                "SELECT start_time, trace_id FROM {k}.duration_index WHERE service_name = ? AND operation_name = ? \
                 AND hour_bucket = ? AND duration >= ? AND duration <= ? LIMIT ?"
            ),
            query_tag_index: format!(
                "SELECT start_time, trace_id FROM {k}.tag_index WHERE service_name = ? AND tag_key = ? AND tag_value = ? \
                 AND bucket = ? AND start_time >= ? AND start_time <= ? LIMIT ?"
            ),
            select_usage: format!("SELECT cluster, day_bucket, spans, body_bytes FROM {k}.usage"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use scylla::value::CqlValue;

    use super::*;
    use crate::{
        cassandra::rows::{IndexTable, IndexedTags, index_rows, span_values},
        testsuite::SpanBuilder,
    };

    #[test]
    fn schema_statements_are_all_idempotent() {
        let stmts = schema_statements(SCHEMA);
        assert_eq!(stmts.len(), 9);
        for s in &stmts {
            assert!(s.starts_with("CREATE TABLE IF NOT EXISTS "), "{s}");
            assert!(!s.contains("--") && !s.contains(';'), "{s}");
        }
        for table in [
            "spans",
            "service_names",
            "operation_names",
            "cluster_operation_names",
            "service_name_index",
            "service_operation_index",
            "duration_index",
            "tag_index",
            "usage",
        ] {
            let prefix = format!("CREATE TABLE IF NOT EXISTS {table} (");
            assert!(stmts.iter().any(|s| s.starts_with(&prefix)), "{table}");
        }
        assert_eq!(
            schema_statements("-- only ; a comment\n CREATE x; ;\n"),
            ["CREATE x"]
        );
    }

    #[test]
    fn keyspace_cql() {
        let ks = Keyspace::new("Meridian").unwrap();
        assert_eq!(
            create_keyspace(&ks, 3),
            "CREATE KEYSPACE IF NOT EXISTS meridian WITH replication = {'class': 'SimpleStrategy', 'replication_factor': '3'} AND durable_writes = true"
        );
        let s = Statements::new(&ks);
        for text in [
            &s.insert_span,
            &s.existing_spans,
            &s.trace_bodies,
            &s.insert_tag_index,
            &s.add_usage,
            &s.select_usage,
            &s.query_duration_index,
        ] {
            assert!(text.contains(" meridian."), "{text}");
        }
        // Bound-value counts match the value builders.
        let span = SpanBuilder::new(1, 1, "svc").build();
        assert_eq!(
            s.insert_span.matches('?').count(),
            span_values(&span, Vec::new(), 0).len()
        );
        let indexed = IndexedTags::new(&[]);
        for row in index_rows(&span, &indexed) {
            let text = match row.table() {
                IndexTable::ServiceName => &s.insert_service_name_index,
                IndexTable::ServiceOperation => &s.insert_service_operation_index,
                IndexTable::Duration => &s.insert_duration_index,
                IndexTable::Tag => &s.insert_tag_index,
            };
            assert_eq!(text.matches('?').count(), row.values(5).len(), "{text}");
            assert_eq!(row.values(5).last(), Some(&CqlValue::Int(5)));
        }
    }
}
