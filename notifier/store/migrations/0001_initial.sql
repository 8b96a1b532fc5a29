-- notifier schema version 1: orders, shipments, events, anomalies, disputes, outbox, digests,
-- devices, carrier health. Instants are UTC text 'YYYY-MM-DDTHH:MM:SS.ffffffZ' (sorts as text);
-- dates are 'YYYY-MM-DD'.

CREATE TABLE orders (
    id                  TEXT PRIMARY KEY,
    email               TEXT NOT NULL,
    name                TEXT NOT NULL DEFAULT '',
    locale              TEXT NOT NULL DEFAULT 'en',
    tz                  TEXT NOT NULL DEFAULT 'UTC',
    channels            TEXT NOT NULL DEFAULT '',
    oms_status          TEXT NOT NULL DEFAULT 'received'
                        CHECK (oms_status IN ('received', 'processing', 'payment_hold',
                                              'backordered', 'cancelled')),
    expected_ship_date  TEXT,
    promised_date       TEXT,
    placed_at           TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    oms_status_since    TEXT NOT NULL,
    -- Incremental anomaly sweep: re-evaluate when dirty, or when the deadline passes.
    rules_dirty         INTEGER NOT NULL DEFAULT 1,
    rules_recheck_at    TEXT
);
CREATE INDEX orders_email ON orders (email);
CREATE INDEX orders_rules_dirty ON orders (id) WHERE rules_dirty = 1;
CREATE INDEX orders_rules_recheck ON orders (rules_recheck_at) WHERE rules_recheck_at IS NOT NULL;

CREATE TABLE shipments (
    id                    INTEGER PRIMARY KEY,
    order_id              TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    carrier               TEXT NOT NULL,
    tracking_number       TEXT NOT NULL,
    status                TEXT NOT NULL DEFAULT 'pending',
    status_detail         TEXT NOT NULL DEFAULT '',
    exception_reason      TEXT,
    first_edd_start       TEXT,
    first_edd_end         TEXT,
    current_edd_start     TEXT,
    current_edd_end       TEXT,
    delivered_at          TEXT,
    signed_by             TEXT,
    service               TEXT,
    last_event_at         TEXT,
    created_at            TEXT NOT NULL,
    next_poll_at          TEXT,
    last_poll_at          TEXT,
    last_success_at       TEXT,
    last_change_at        TEXT,
    polls                 INTEGER NOT NULL DEFAULT 0,
    unchanged_polls       INTEGER NOT NULL DEFAULT 0,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    confirmations         INTEGER NOT NULL DEFAULT 0,
    blind_seconds         REAL NOT NULL DEFAULT 0,
    UNIQUE (order_id, carrier, tracking_number)
);
CREATE INDEX shipments_order ON shipments (order_id);
CREATE INDEX shipments_number ON shipments (tracking_number);
-- "Due for polling": only active shipments are in the index (next_poll_at NULL = stopped).
CREATE INDEX shipments_due ON shipments (carrier, next_poll_at) WHERE next_poll_at IS NOT NULL;

CREATE TABLE events (
    id               INTEGER PRIMARY KEY,
    shipment_id      INTEGER NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    identity         TEXT NOT NULL,
    at               TEXT NOT NULL,
    local_time       TEXT,
    offset_assumed   INTEGER NOT NULL DEFAULT 0,
    status           TEXT NOT NULL,
    code             TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    city             TEXT,
    state            TEXT,
    postal_code      TEXT,
    country          TEXT,
    exception_reason TEXT,
    seen_at          TEXT NOT NULL,
    UNIQUE (shipment_id, identity)
);

CREATE TABLE anomalies (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    order_id      TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    shipment_id   INTEGER REFERENCES shipments (id) ON DELETE CASCADE,
    subject       TEXT NOT NULL,
    carrier       TEXT,
    detail        TEXT NOT NULL DEFAULT '',
    opened_at     TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    resolved_at   TEXT,
    resolution    TEXT
);
-- One open anomaly per subject (order or shipment) and kind.
CREATE UNIQUE INDEX anomalies_one_open ON anomalies (subject, kind) WHERE resolved_at IS NULL;
CREATE INDEX anomalies_order ON anomalies (order_id);
CREATE INDEX anomalies_open_kind ON anomalies (kind, opened_at) WHERE resolved_at IS NULL;
CREATE INDEX anomalies_resolved ON anomalies (resolved_at) WHERE resolved_at IS NOT NULL;

CREATE TABLE anomaly_history (
    id          INTEGER PRIMARY KEY,
    anomaly_id  INTEGER NOT NULL REFERENCES anomalies (id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    change      TEXT NOT NULL CHECK (change IN ('opened', 'updated', 'closed')),
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX anomaly_history_anomaly ON anomaly_history (anomaly_id);

CREATE TABLE disputes (
    id           INTEGER PRIMARY KEY,
    order_id     TEXT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    shipment_id  INTEGER NOT NULL REFERENCES shipments (id) ON DELETE CASCADE,
    reason       TEXT NOT NULL,
    opened_at    TEXT NOT NULL,
    resolved_at  TEXT,
    resolution   TEXT,
    note         TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX disputes_one_open ON disputes (shipment_id) WHERE resolved_at IS NULL;
CREATE INDEX disputes_order ON disputes (order_id);

CREATE TABLE notifications (
    id               INTEGER PRIMARY KEY,
    dedup_key        TEXT NOT NULL UNIQUE,
    order_id         TEXT REFERENCES orders (id) ON DELETE SET NULL,
    shipment_id      INTEGER,
    trigger          TEXT NOT NULL,
    channel          TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'dead',
                                       'superseded')),
    -- Pending rows in the same group are superseded by a later state (e.g. per shipment).
    supersede_group  TEXT,
    urgent           INTEGER NOT NULL DEFAULT 0,
    payload          TEXT NOT NULL DEFAULT '{}',
    created_at       TEXT NOT NULL,
    -- Pending rows: when to try; sending rows: when the claim's lease expires; NULL for
    -- every final status, so the partial index below holds only work still to do.
    next_attempt_at  TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    sent_at          TEXT,
    provider_id      TEXT
);
CREATE INDEX notifications_due ON notifications (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX notifications_order ON notifications (order_id);
CREATE INDEX notifications_status ON notifications (status, created_at);
CREATE INDEX notifications_group ON notifications (supersede_group)
    WHERE status = 'pending' AND supersede_group IS NOT NULL;
CREATE INDEX notifications_recipient_day ON notifications (recipient, created_at);

CREATE TABLE devices (
    id               INTEGER PRIMARY KEY,
    customer_email   TEXT NOT NULL,
    channel          TEXT NOT NULL,
    token            TEXT NOT NULL,
    enabled          INTEGER NOT NULL DEFAULT 1,
    disabled_reason  TEXT,
    created_at       TEXT NOT NULL,
    UNIQUE (channel, token)
);
CREATE INDEX devices_customer ON devices (customer_email);

CREATE TABLE unsubscribes (
    email    TEXT NOT NULL,
    channel  TEXT NOT NULL,
    at       TEXT NOT NULL,
    PRIMARY KEY (email, channel)
);

CREATE TABLE digests (
    period_key  TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    sent_at     TEXT,
    status      TEXT NOT NULL DEFAULT 'pending',
    summary     TEXT NOT NULL DEFAULT ''
);

CREATE TABLE carrier_health (
    carrier               TEXT PRIMARY KEY,
    last_success_at       TEXT,
    last_failure_at       TEXT,
    last_error            TEXT,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    successes             INTEGER NOT NULL DEFAULT 0,
    failures              INTEGER NOT NULL DEFAULT 0,
    rate_limited          INTEGER NOT NULL DEFAULT 0,
    circuit_state         TEXT NOT NULL DEFAULT 'closed',
    circuit_opened_at     TEXT,
    blocked_until         TEXT,
    paused_reason         TEXT,
    window_day            TEXT,
    day_requests          INTEGER NOT NULL DEFAULT 0,
    window_hour           TEXT,
    hour_requests         INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE ops_alerts (
    key           TEXT PRIMARY KEY,
    first_at      TEXT NOT NULL,
    last_sent_at  TEXT,
    count         INTEGER NOT NULL DEFAULT 0,
    detail        TEXT NOT NULL DEFAULT ''
);

CREATE TABLE meta (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
