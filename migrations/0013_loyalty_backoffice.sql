ALTER TABLE loyalty_registers ADD COLUMN store TEXT NOT NULL DEFAULT 'default';
CREATE INDEX loyalty_registers_store ON loyalty_registers (store);
CREATE TABLE loyalty_switches (
    scope TEXT NOT NULL,
    id TEXT NOT NULL,
    discount_cards BIGINT,
    payment_cards BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (scope, id)
);
CREATE TABLE loyalty_cashiers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    store TEXT NOT NULL,
    card_in_open_receipt BIGINT NOT NULL,
    manual_card_entry BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX loyalty_cashiers_store ON loyalty_cashiers (store);
CREATE TABLE loyalty_register_queue (
    register_id TEXT PRIMARY KEY,
    depth BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);
CREATE TABLE loyalty_payment_cards (
    number TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    balance BIGINT NOT NULL,
    nominal BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE loyalty_payment_operations (
    operation_id TEXT PRIMARY KEY,
    register_id TEXT NOT NULL,
    cashier TEXT NOT NULL,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    card_number TEXT NOT NULL,
    local_time TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    status TEXT,
    hold_expires_at BIGINT,
    payment_id TEXT,
    refunded BIGINT NOT NULL
);
CREATE INDEX loyalty_payment_operations_holds ON loyalty_payment_operations (card_number, status);
CREATE INDEX loyalty_payment_operations_expiry ON loyalty_payment_operations (status, hold_expires_at);
