CREATE TABLE backoffice_receipts (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    store TEXT NOT NULL,
    register TEXT NOT NULL,
    cashier TEXT NOT NULL,
    shift BIGINT NOT NULL,
    local_time TEXT NOT NULL,
    kind TEXT NOT NULL,
    sale_id TEXT,
    total BIGINT NOT NULL,
    cash BIGINT NOT NULL,
    bank_card BIGINT NOT NULL,
    payment_card BIGINT NOT NULL,
    bonus BIGINT NOT NULL,
    card TEXT,
    loyalty_operation_id TEXT,
    accrued BIGINT NOT NULL,
    request TEXT NOT NULL,
    answer TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX backoffice_receipts_time ON backoffice_receipts (store, local_time);
CREATE INDEX backoffice_receipts_card ON backoffice_receipts (card);
CREATE INDEX backoffice_receipts_sale ON backoffice_receipts (sale_id);
CREATE TABLE backoffice_receipt_lines (
    receipt_id TEXT NOT NULL,
    line_no BIGINT NOT NULL,
    goods_id TEXT NOT NULL,
    name TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    price BIGINT NOT NULL,
    amount BIGINT NOT NULL,
    discount BIGINT NOT NULL,
    PRIMARY KEY (receipt_id, line_no)
);
CREATE TABLE backoffice_goods (
    store TEXT NOT NULL,
    goods_id TEXT NOT NULL,
    name TEXT NOT NULL,
    unit TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (store, goods_id)
);
CREATE TABLE backoffice_movements (
    id TEXT PRIMARY KEY,
    store TEXT NOT NULL,
    goods_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    counted BIGINT,
    local_time TEXT NOT NULL,
    document TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX backoffice_movements_goods ON backoffice_movements (store, goods_id, created_at);
CREATE TABLE backoffice_stock (
    store TEXT NOT NULL,
    goods_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    last_movement_at BIGINT NOT NULL,
    last_local_time TEXT NOT NULL,
    PRIMARY KEY (store, goods_id)
);
CREATE TABLE backoffice_resyncs (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    request TEXT NOT NULL,
    result TEXT NOT NULL
);
