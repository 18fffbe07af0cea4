-- Derived records beside the spans (store/src/records.rs): trace
-- summaries, per-minute service edges, cluster clock offsets, span
-- backlinks. Keys are bytea so a key prefix is a byte-order range scan
-- whatever the database collation.
CREATE TABLE IF NOT EXISTS records (
    kind    smallint NOT NULL,
    key     bytea    NOT NULL,
    time_ms bigint   NOT NULL,
    value   bytea    NOT NULL,
    PRIMARY KEY (kind, key)
);

CREATE INDEX IF NOT EXISTS records_by_time ON records (kind, time_ms);
