-- Meridian embedded store (SQLite).
--
-- spans: one row per span, keyed by (trace_id, span_id) so a replayed batch
-- stores nothing twice. Narrow columns serve search; `body` holds the whole
-- span (JSON, zstd-compressed) for trace retrieval.
CREATE TABLE IF NOT EXISTS spans (
    trace_id    BLOB    NOT NULL,
    span_id     BLOB    NOT NULL,
    service     TEXT    NOT NULL,
    operation   TEXT    NOT NULL,
    span_kind   INTEGER NOT NULL,
    cluster     TEXT    NOT NULL,
    start_ns    INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    is_error    INTEGER NOT NULL,
    body        BLOB    NOT NULL,
    PRIMARY KEY (trace_id, span_id)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS spans_by_service_start ON spans (service, start_ns);
CREATE INDEX IF NOT EXISTS spans_by_start ON spans (start_ns);

-- span_tags: the string form of every span, resource and event attribute,
-- plus the synthetic tags Jaeger users search by (error, span.kind,
-- otel.status_code). The key order serves `key = ? AND value = ?` lookups
-- joined to one span.
CREATE TABLE IF NOT EXISTS span_tags (
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    trace_id BLOB NOT NULL,
    span_id  BLOB NOT NULL,
    PRIMARY KEY (key, value, trace_id, span_id)
) WITHOUT ROWID;

-- operations: the distinct (service, operation, kind) seen, for the
-- services and operations lists.
CREATE TABLE IF NOT EXISTS operations (
    service   TEXT    NOT NULL,
    name      TEXT    NOT NULL,
    span_kind INTEGER NOT NULL,
    PRIMARY KEY (service, name, span_kind)
) WITHOUT ROWID;
