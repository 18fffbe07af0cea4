//! The prepared statements of one session, and which one writes or reads
//! each index table.

use scylla::{
    client::session::Session, errors::PrepareError, statement::prepared::PreparedStatement,
};

use super::{rows::IndexTable, schema::Statements};
use crate::StoreError;

#[derive(Debug)]
pub(super) struct Prepared {
    pub(super) insert_span: PreparedStatement,
    pub(super) existing_spans: PreparedStatement,
    pub(super) trace_bodies: PreparedStatement,
    pub(super) insert_service_name: PreparedStatement,
    pub(super) insert_operation_name: PreparedStatement,
    pub(super) insert_cluster_operation_name: PreparedStatement,
    pub(super) insert_service_name_index: PreparedStatement,
    pub(super) insert_service_operation_index: PreparedStatement,
    pub(super) insert_duration_index: PreparedStatement,
    pub(super) insert_tag_index: PreparedStatement,
    pub(super) add_usage: PreparedStatement,
    pub(super) select_services: PreparedStatement,
    pub(super) select_operations: PreparedStatement,
    pub(super) select_operations_of_kind: PreparedStatement,
    pub(super) select_cluster_services: PreparedStatement,
    pub(super) select_cluster_operations: PreparedStatement,
    pub(super) query_service_name_index: PreparedStatement,
    pub(super) query_service_operation_index: PreparedStatement,
    pub(super) query_duration_index: PreparedStatement,
    pub(super) query_tag_index: PreparedStatement,
    pub(super) select_usage: PreparedStatement,
    pub(super) ping: PreparedStatement,
}

impl Prepared {
    pub(super) async fn new(session: &Session, s: &Statements) -> Result<Self, StoreError> {
        let p = |text: &str| prepare(session, text.to_owned());
        Ok(Self {
            insert_span: p(&s.insert_span).await?,
            existing_spans: p(&s.existing_spans).await?,
            trace_bodies: p(&s.trace_bodies).await?,
            insert_service_name: p(&s.insert_service_name).await?,
            insert_operation_name: p(&s.insert_operation_name).await?,
            insert_cluster_operation_name: p(&s.insert_cluster_operation_name).await?,
            insert_service_name_index: p(&s.insert_service_name_index).await?,
            insert_service_operation_index: p(&s.insert_service_operation_index).await?,
            insert_duration_index: p(&s.insert_duration_index).await?,
            insert_tag_index: p(&s.insert_tag_index).await?,
            add_usage: {
                // Counter increments are not idempotent: never retried.
                let mut st = p(&s.add_usage).await?;
                st.set_is_idempotent(false);
                st
            },
            select_services: p(&s.select_services).await?,
            select_operations: p(&s.select_operations).await?,
            select_operations_of_kind: p(&s.select_operations_of_kind).await?,
            select_cluster_services: p(&s.select_cluster_services).await?,
            select_cluster_operations: p(&s.select_cluster_operations).await?,
            query_service_name_index: p(&s.query_service_name_index).await?,
            query_service_operation_index: p(&s.query_service_operation_index).await?,
            query_duration_index: p(&s.query_duration_index).await?,
            query_tag_index: p(&s.query_tag_index).await?,
            select_usage: p(&s.select_usage).await?,
            ping: p("SELECT release_version FROM system.local").await?,
        })
    }

    pub(super) fn index_insert(&self, table: IndexTable) -> &PreparedStatement {
        match table {
            IndexTable::ServiceName => &self.insert_service_name_index,
            IndexTable::ServiceOperation => &self.insert_service_operation_index,
            IndexTable::Duration => &self.insert_duration_index,
            IndexTable::Tag => &self.insert_tag_index,
        }
    }

    pub(super) fn index_query(&self, table: IndexTable) -> &PreparedStatement {
        match table {
            IndexTable::ServiceName => &self.query_service_name_index,
            IndexTable::ServiceOperation => &self.query_service_operation_index,
            IndexTable::Duration => &self.query_duration_index,
            IndexTable::Tag => &self.query_tag_index,
        }
    }
}

async fn prepare(session: &Session, text: String) -> Result<PreparedStatement, StoreError> {
    let mut st = session.prepare(text).await.map_err(|e| match e {
        PrepareError::ConnectionPoolError(_) => StoreError::Unavailable(e.to_string()),
        other => StoreError::Migration(format!("preparing a statement: {other}")),
    })?;
    // Everything but the usage counters is an upsert or a read.
    st.set_is_idempotent(true);
    Ok(st)
}
