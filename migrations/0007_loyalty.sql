CREATE TABLE loyalty_registers (
    id TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    description TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE loyalty_holders (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    phone TEXT UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE TABLE loyalty_cards (
    number TEXT PRIMARY KEY,
    holder_id TEXT NOT NULL REFERENCES loyalty_holders(id),
    state TEXT NOT NULL,
    balance BIGINT NOT NULL,
    accumulated BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX loyalty_cards_holder ON loyalty_cards (holder_id);
CREATE TABLE loyalty_identifiers (
    value TEXT NOT NULL,
    kind TEXT NOT NULL,
    card_number TEXT NOT NULL REFERENCES loyalty_cards(number),
    PRIMARY KEY (value, kind)
);
CREATE TABLE loyalty_products (
    goods_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    no_discount BIGINT NOT NULL,
    no_bonus BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE loyalty_operations (
    operation_id TEXT PRIMARY KEY,
    register_id TEXT NOT NULL,
    cashier TEXT NOT NULL,
    kind TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    card_number TEXT,
    local_time TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    offline BIGINT NOT NULL,
    status TEXT,
    hold_expires_at BIGINT,
    purchase_id TEXT,
    net BIGINT NOT NULL,
    bonus_spend BIGINT NOT NULL,
    bonus_earn BIGINT NOT NULL,
    refunded_net BIGINT NOT NULL,
    refunded_spend BIGINT NOT NULL,
    refunded_earn BIGINT NOT NULL
);
CREATE INDEX loyalty_operations_holds ON loyalty_operations (card_number, status);
CREATE INDEX loyalty_operations_expiry ON loyalty_operations (status, hold_expires_at);
CREATE TABLE loyalty_lots (
    id TEXT PRIMARY KEY,
    card_number TEXT NOT NULL REFERENCES loyalty_cards(number),
    amount BIGINT NOT NULL,
    remaining BIGINT NOT NULL,
    expires_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX loyalty_lots_card ON loyalty_lots (card_number, remaining);
CREATE TABLE loyalty_ledger (
    id TEXT PRIMARY KEY,
    posting_id TEXT NOT NULL,
    account TEXT NOT NULL,
    amount BIGINT NOT NULL,
    kind TEXT NOT NULL,
    operation_id TEXT,
    lot_id TEXT,
    reason TEXT,
    actor TEXT,
    created_at BIGINT NOT NULL,
    seq BIGINT NOT NULL
);
CREATE INDEX loyalty_ledger_account ON loyalty_ledger (account, created_at)
