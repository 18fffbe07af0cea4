-- Meridian Postgres shard schema. One database per shard; every trace's
-- spans live on one shard (store/src/shard.rs routes by trace id).
--
-- Cost model: the bulky part of a span is its body, so bodies are stored
-- compressed per trace chunk (the spans of one trace from one cluster in
-- one write) and never indexed. Search uses one small summary row per
-- trace and day whose GIN-indexed `terms` narrow candidates; the exact
-- per-span match is confirmed on the decoded bodies. Names live once in
-- dictionaries.
--
-- Time partitions: `traces` and `chunks` are partitioned by `day` (Unix
-- day of the span's start). Partitions are created by the writer on first
-- use; retention drops whole partitions and deletes row by row only in the
-- partly expired edge.

-- Dictionaries: services and clusters (kind 1 = service, 2 = cluster), and
-- operations per service and span kind.
CREATE TABLE IF NOT EXISTS names (
    id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind smallint NOT NULL,
    name text     NOT NULL,
    UNIQUE (kind, name)
);

CREATE TABLE IF NOT EXISTS operations (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id integer  NOT NULL REFERENCES names (id),
    name       text     NOT NULL,
    span_kind  smallint NOT NULL,
    UNIQUE (service_id, name, span_kind)
);

-- One row per (trace, day): what search needs without reading bodies.
--   first_ns/last_ns  earliest and latest span start that day
--   max_duration_ns   longest span (prunes min-duration searches)
--   root_op           operation id of the root span, when seen
--   clusters          cluster name ids
--   terms             32-bit hashes of (service, duration bucket),
--                     (service, operation, duration bucket) and "key=value"
--                     of indexed tags; a hash collision only adds a
--                     candidate that the confirmation drops
--   span_ids          every stored span id: the idempotency check
CREATE TABLE IF NOT EXISTS traces (
    day             integer  NOT NULL,
    trace_id        bytea    NOT NULL,
    first_ns        bigint   NOT NULL,
    last_ns         bigint   NOT NULL,
    max_duration_ns bigint   NOT NULL,
    span_count      integer  NOT NULL,
    error_count     integer  NOT NULL,
    root_op         integer,
    clusters        integer[] NOT NULL,
    terms           integer[] NOT NULL,
    span_ids        bigint[] NOT NULL,
    PRIMARY KEY (trace_id, day)
) PARTITION BY RANGE (day);

CREATE INDEX IF NOT EXISTS traces_terms ON traces USING gin (terms) WITH (fastupdate = on);
CREATE INDEX IF NOT EXISTS traces_recent ON traces (last_ns);

-- Span bodies: zstd-compressed JSON of a chunk's spans.
CREATE TABLE IF NOT EXISTS chunks (
    day        integer NOT NULL,
    trace_id   bytea   NOT NULL,
    cluster    integer NOT NULL,
    span_count integer NOT NULL,
    last_ns    bigint  NOT NULL,
    body       bytea   NOT NULL
) PARTITION BY RANGE (day);

CREATE INDEX IF NOT EXISTS chunks_trace ON chunks (trace_id);

-- Spans and body bytes per day and cluster, kept by the writer, so the
-- storage figures never scan bodies.
CREATE TABLE IF NOT EXISTS usage (
    day        integer NOT NULL,
    cluster    integer NOT NULL,
    spans      bigint  NOT NULL,
    body_bytes bigint  NOT NULL,
    PRIMARY KEY (day, cluster)
);

-- Days whose search index was rebuilt once the day was over: GIN indexes
-- grown insert by insert are several times larger than rebuilt ones.
CREATE TABLE IF NOT EXISTS compacted_days (
    day integer PRIMARY KEY
);

-- The longest (last_ns - first_ns) of any summary row of a day, raised by
-- writers in the transaction that stores such a row. A search for a window
-- [lo, hi] then scans `traces_recent` only from hi + max_extent down to lo:
-- every row overlapping the window lies there.
CREATE TABLE IF NOT EXISTS day_extent (
    day        integer PRIMARY KEY,
    max_extent bigint  NOT NULL
);
