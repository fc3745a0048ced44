-- Payments (docs/architecture.md, "A booking's life").

-- One intent per checked-out hold: what the provider is asked to collect, priced by the
-- server from the held seats' categories.
CREATE TABLE payment_intents (
    id            TEXT PRIMARY KEY,              -- pi_<hold id>
    show          TEXT NOT NULL,
    hold_id       TEXT NOT NULL UNIQUE,
    user_id       TEXT NOT NULL,
    amount_minor  BIGINT NOT NULL,
    currency      TEXT NOT NULL,
    seats         TEXT[] NOT NULL,
    area          TEXT,
    quantity      BIGINT NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    epoch         BIGINT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Provider callbacks already answered, by the provider's event id: a replay gets the
-- first answer and changes nothing.
CREATE TABLE payment_events (
    show        TEXT NOT NULL,
    provider    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    intent_id   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    status      INTEGER NOT NULL,
    answer      JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (show, provider, event_id)
);

-- The audit trail: every transition of a booking's life, written in the transaction
-- that changes its state. Keyed by the hold (a booking keeps its hold's id), so the
-- trail runs from the checkout to the refund.
CREATE TABLE booking_audit (
    id          BIGSERIAL PRIMARY KEY,
    show        TEXT NOT NULL,
    hold_id     TEXT NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    from_state  TEXT NOT NULL,
    to_state    TEXT NOT NULL,
    action      TEXT NOT NULL,
    reason      TEXT NOT NULL DEFAULT '',
    epoch       BIGINT NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX booking_audit_hold ON booking_audit (show, hold_id, id);
