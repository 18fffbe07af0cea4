-- Derived records beside the spans (store/src/records.rs): trace
-- summaries, per-minute service edges, cluster clock offsets, span
-- backlinks. Keys compare as bytes, so a key prefix is a range scan.
CREATE TABLE IF NOT EXISTS records (
    kind    INTEGER NOT NULL,
    key     BLOB    NOT NULL,
    time_ms INTEGER NOT NULL,
    value   BLOB    NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS records_by_time ON records (kind, time_ms);
