-- cluster_operations: the distinct (cluster, service, operation, kind)
-- seen, so the services and operations lists answer for a caller's scope
-- (model::access::Scope) from the primary key alone. Backfilled from the
-- spans already stored.
CREATE TABLE IF NOT EXISTS cluster_operations (
    cluster   TEXT    NOT NULL,
    service   TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    span_kind INTEGER NOT NULL,
    PRIMARY KEY (cluster, service, name, span_kind)
) WITHOUT ROWID;

INSERT OR IGNORE INTO cluster_operations (cluster, service, name, span_kind)
    SELECT DISTINCT cluster, service, operation, span_kind FROM spans;
