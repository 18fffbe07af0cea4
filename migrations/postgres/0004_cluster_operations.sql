-- cluster_operations: which cluster each operation (and so each service)
-- was seen in, so the services and operations lists answer for a caller's
-- scope (model::access::Scope). Written by the writer beside the
-- dictionaries (idempotent, cached). Operations seen only before this
-- migration have no row: they are listed for an unscoped caller, and for
-- a scoped one once a span of them arrives again (span bodies are
-- compressed, so SQL cannot backfill them).
CREATE TABLE IF NOT EXISTS cluster_operations (
    cluster_id integer NOT NULL REFERENCES names (id),
    op_id      integer NOT NULL REFERENCES operations (id),
    PRIMARY KEY (cluster_id, op_id)
);
