CREATE TABLE orders (
    order_guid TEXT PRIMARY KEY,
    rest_code TEXT,
    status TEXT NOT NULL,
    opened_at TEXT,
    updated_at TEXT,
    shift_num BIGINT,
    order_sum BIGINT NOT NULL,
    paid_sum BIGINT NOT NULL,
    receipts BIGINT NOT NULL,
    is_return BIGINT NOT NULL,
    last_offset BIGINT NOT NULL,
    snapshot TEXT NOT NULL
);
CREATE INDEX orders_rest_opened ON orders (rest_code, opened_at);
CREATE INDEX orders_shift ON orders (rest_code, shift_num);
CREATE TABLE stations (
    station_key TEXT PRIMARY KEY,
    rest_code TEXT,
    snapshot TEXT NOT NULL
);
CREATE TABLE cash_servers (
    server_key TEXT PRIMARY KEY,
    rest_code TEXT,
    snapshot TEXT NOT NULL
);
CREATE TABLE shifts (
    rest_code TEXT NOT NULL,
    shift_num BIGINT NOT NULL,
    closed BIGINT NOT NULL,
    snapshot TEXT NOT NULL,
    PRIMARY KEY (rest_code, shift_num)
)
