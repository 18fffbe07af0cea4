//! Running statements: paged reads, single executes, and one-partition
//! unlogged batches.

use futures::{StreamExt as _, TryStreamExt as _};
use scylla::{
    deserialize::row::DeserializeRow,
    serialize::row::SerializeRow,
    statement::{
        batch::{Batch, BatchType},
        prepared::PreparedStatement,
    },
    value::CqlValue,
};

use super::{
    CassandraStore,
    error::{exec_error, pager_error, row_error},
};
use crate::StoreError;

impl CassandraStore {
    /// Every row of a (paged) read.
    pub(super) async fn rows<T>(
        &self,
        st: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        self.session
            .execute_iter(st.clone(), values)
            .await
            .map_err(pager_error)?
            .rows_stream::<T>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .map_err(row_error)
            .try_collect()
            .await
    }

    /// [`rows`](Self::rows), but stops paging after `max` rows.
    pub(super) async fn rows_at_most<T>(
        &self,
        st: &PreparedStatement,
        values: impl SerializeRow,
        max: usize,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'f, 'm> DeserializeRow<'f, 'm> + Send + 'static,
    {
        self.session
            .execute_iter(st.clone(), values)
            .await
            .map_err(pager_error)?
            .rows_stream::<T>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?
            .map_err(row_error)
            .take(max)
            .try_collect()
            .await
    }

    pub(super) async fn exec(
        &self,
        st: &PreparedStatement,
        values: Vec<CqlValue>,
    ) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(st, values)
            .await
            .map(|_| ())
            .map_err(exec_error)
    }

    /// One statement for every row of one partition: an unlogged batch, or
    /// a plain execute for a single row.
    pub(super) async fn exec_partition(
        &self,
        st: &PreparedStatement,
        mut rows: Vec<Vec<CqlValue>>,
    ) -> Result<(), StoreError> {
        if rows.len() == 1 {
            let values = rows.pop().unwrap_or_default();
            return self.exec(st, values).await;
        }
        let mut batch = Batch::new(BatchType::Unlogged);
        for _ in 0..rows.len() {
            batch.append_statement(st.clone());
        }
        batch.set_is_idempotent(true);
        self.session
            .batch(&batch, rows)
            .await
            .map(|_| ())
            .map_err(exec_error)
    }
}
