-- Hot traces: the idempotency check moves from the summary row to the
-- chunks. Until now every write of a trace re-read and rewrote
-- `traces.span_ids`, every span id the trace had, so writing one trace of
-- N spans cost O(N²). Each chunk row now carries the ids of its own spans,
-- written once (8 bytes a span, as the summary's array cost).
--
-- A write reads the ids of the trace's chunks that are not `hot`: the
-- first ones, holding at most 1,024 spans of the trace that day
-- (store/src/postgres/write.rs, HOT_TRACE_SPANS). Chunks written after the
-- trace passed that are `hot`, and a GIN index over their ids answers with
-- one probe per id of the batch. So a write costs what it adds however
-- long the trace, and the index (about 56 bytes an id: GIN keeps a tuple
-- per distinct key) is paid only by the spans of very long traces.
--
-- The index is built with a small pending list: each probe scans the
-- list, which would otherwise grow to 4 MB between vacuums.
--
-- Rows written before this migration keep their ids in `traces.span_ids`
-- (writers still read it, and no longer append to it); their chunks have
-- NULL here and are not hot.
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS span_ids bigint[];
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS hot boolean NOT NULL DEFAULT false;

CREATE INDEX IF NOT EXISTS chunks_hot_span_ids ON chunks USING gin (span_ids)
    WITH (fastupdate = on, gin_pending_list_limit = 128) WHERE hot;
