-- Hot traces: the idempotency check moves from the summary row to the
-- chunks. Until now every write of a trace re-read and rewrote
-- `traces.span_ids`, every span id the trace had, so writing one trace of
-- N spans cost O(N²). Each chunk row now carries the ids of its own spans,
-- written once, and a GIN index answers "which of these ids are stored"
-- with one probe per id: a write costs what it adds.
--
-- The index is built without the pending list (fastupdate = off): every
-- probe would scan the whole list, which only a vacuum empties, and a
-- hot trace would be quadratic again.
--
-- Rows written before this migration keep their ids in `traces.span_ids`
-- (writers still read it, and no longer append to it); their chunks have
-- NULL here.
ALTER TABLE chunks ADD COLUMN IF NOT EXISTS span_ids bigint[];

CREATE INDEX IF NOT EXISTS chunks_span_ids ON chunks USING gin (span_ids) WITH (fastupdate = off);
