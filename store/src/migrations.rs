//! The SQL migrations, embedded in the binary.
//!
//! `sqlx::migrate!` would do the same at compile time, but its proc macro
//! builds sqlx's drivers (and the bundled SQLite) a second time, for the
//! host: minutes of a cold build on two cores. The list below is what the
//! macro would produce; a test checks it against the `migrations/`
//! directory, version, description and checksum, so a database migrated by
//! an earlier build stays valid and a new file cannot be forgotten.

use std::borrow::Cow;

use sqlx::{
    SqlStr,
    migrate::{Migration, MigrationType, Migrator},
};

/// One migration file: version, description (the file name after the
/// version, `_` read as a space) and its SQL.
type Embedded = (i64, &'static str, &'static str);

const SQLITE: &[Embedded] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "records",
        include_str!("../../migrations/sqlite/0002_records.sql"),
    ),
    (
        3,
        "cluster operations",
        include_str!("../../migrations/sqlite/0003_cluster_operations.sql"),
    ),
];

const POSTGRES: &[Embedded] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "records",
        include_str!("../../migrations/postgres/0002_records.sql"),
    ),
    (
        3,
        "chunk span ids",
        include_str!("../../migrations/postgres/0003_chunk_span_ids.sql"),
    ),
    (
        4,
        "cluster operations",
        include_str!("../../migrations/postgres/0004_cluster_operations.sql"),
    ),
];

/// The embedded store's migrations.
pub(crate) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

/// A Postgres shard's migrations.
pub(crate) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

fn migrator(files: &'static [Embedded]) -> Migrator {
    let migrations = files
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                SqlStr::from_static(sql),
                // The file-based resolver's rule.
                sql.starts_with("-- no-transaction"),
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    async fn same_as_directory(embedded: Migrator, dir: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../migrations")
            .join(dir);
        let from_files = Migrator::new(path).await.unwrap();
        let key = |m: &Migration| {
            (
                m.version,
                m.description.to_string(),
                m.migration_type,
                m.checksum.to_vec(),
                m.no_tx,
            )
        };
        let want: Vec<_> = from_files.iter().map(key).collect();
        let got: Vec<_> = embedded.iter().map(key).collect();
        assert!(!want.is_empty());
        assert_eq!(
            got, want,
            "store/src/migrations.rs is out of step with migrations/{dir}"
        );
    }

    #[tokio::test]
    async fn sqlite_list_is_the_directory() {
        same_as_directory(sqlite(), "sqlite").await;
    }

    #[tokio::test]
    async fn postgres_list_is_the_directory() {
        same_as_directory(postgres(), "postgres").await;
    }
}
