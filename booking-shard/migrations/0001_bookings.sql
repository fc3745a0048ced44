-- Shows known to the booking service. closed_at is set when the Show is deleted (the
-- operator's finalizer) or sales close; bookings are never deleted with a show.
CREATE TABLE shows (
    show        TEXT PRIMARY KEY,            -- "<namespace>/<name>"
    closed_at   TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Fencing: the epoch of the leader allowed to write for a show. A new leader raises
-- it (to its etcd leader-key create revision) before serving; every write transaction
-- reads it FOR SHARE and aborts when it is not the writer's own.
CREATE TABLE show_leaders (
    show        TEXT PRIMARY KEY,
    epoch       BIGINT NOT NULL,
    leader      TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE bookings (
    id                 TEXT PRIMARY KEY,
    reference          TEXT NOT NULL UNIQUE,
    show               TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
    hold_id            TEXT NOT NULL UNIQUE,  -- confirming a hold twice yields one booking
    payment_reference  TEXT NOT NULL,
    amount_minor       BIGINT NOT NULL,
    currency           TEXT NOT NULL,
    refund_status      TEXT,
    checked_in_at      TIMESTAMPTZ,
    epoch              BIGINT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX bookings_show_user ON bookings (show, user_id);

-- Reserved seats of a booking. The partial unique index is the last line of defence:
-- whatever happens above it, one seat is confirmed in at most one booking.
CREATE TABLE booking_seats (
    booking_id  TEXT NOT NULL REFERENCES bookings (id),
    show        TEXT NOT NULL,
    seat        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
    PRIMARY KEY (booking_id, seat)
);
CREATE UNIQUE INDEX booking_seats_confirmed_once
    ON booking_seats (show, seat) WHERE status = 'confirmed';

-- General-admission tickets of a booking.
CREATE TABLE booking_general (
    booking_id  TEXT NOT NULL REFERENCES bookings (id),
    show        TEXT NOT NULL,
    area        TEXT NOT NULL,
    quantity    INTEGER NOT NULL CHECK (quantity > 0),
    status      TEXT NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
    PRIMARY KEY (booking_id, area)
);

-- Sold general-admission tickets per area; the CHECK is the last line of defence
-- against selling an area beyond its capacity.
CREATE TABLE general_sold (
    show      TEXT NOT NULL,
    area      TEXT NOT NULL,
    capacity  BIGINT NOT NULL,
    sold      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (show, area),
    CHECK (sold >= 0 AND sold <= capacity)
);

-- Outbox / audit trail of booking events, written in the same transaction.
CREATE TABLE booking_events (
    id          BIGSERIAL PRIMARY KEY,
    show        TEXT NOT NULL,
    booking_id  TEXT NOT NULL REFERENCES bookings (id),
    kind        TEXT NOT NULL,
    payload     JSONB NOT NULL,
    epoch       BIGINT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX booking_events_show ON booking_events (show, id);
