-- Events leave the shard (docs/architecture.md, "Events"): every outbox row gets a
-- per-show gapless sequence number and a unique id, assigned in the transaction that
-- writes the booking change; each sink keeps a cursor; undeliverable events are kept
-- as dead letters until staff replay them.

-- The last sequence number a show handed out. The fenced write transaction takes this
-- row's lock to number its events, so numbers are gapless and commit in order.
CREATE TABLE event_sequences (
    show    TEXT PRIMARY KEY,
    last    BIGINT NOT NULL DEFAULT 0,
    -- Events up to this number were pruned (retention): a feed cursor below it is too old.
    pruned  BIGINT NOT NULL DEFAULT 0
);

ALTER TABLE booking_events ADD COLUMN seq BIGINT;
ALTER TABLE booking_events ADD COLUMN event_id TEXT NOT NULL DEFAULT gen_random_uuid()::text;
UPDATE booking_events e SET seq = n.seq
    FROM (SELECT id, row_number() OVER (PARTITION BY show ORDER BY id) AS seq
          FROM booking_events) n
    WHERE e.id = n.id;
ALTER TABLE booking_events ALTER COLUMN seq SET NOT NULL;
CREATE UNIQUE INDEX booking_events_show_seq ON booking_events (show, seq);
CREATE UNIQUE INDEX booking_events_event_id ON booking_events (event_id);
INSERT INTO event_sequences (show, last)
    SELECT show, max(seq) FROM booking_events GROUP BY show;

-- Per sink: the highest sequence number the sink acknowledged (or that was
-- dead-lettered for it). Advanced only by the fenced leader.
CREATE TABLE event_cursors (
    show        TEXT NOT NULL,
    sink        TEXT NOT NULL,
    seq         BIGINT NOT NULL DEFAULT 0,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (show, sink)
);

-- Events a sink refused for longer than its retry window.
CREATE TABLE event_dead_letters (
    id           BIGSERIAL PRIMARY KEY,
    show         TEXT NOT NULL,
    sink         TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    event_id     TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    last_error   TEXT NOT NULL,
    replayed_at  TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (show, sink, seq)
);
