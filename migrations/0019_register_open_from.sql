-- Seed 004: a register may have no password, only when the operator says so
-- for that register and only from the addresses listed here (comma
-- separated addresses or networks). Empty: the register needs its password.
ALTER TABLE loyalty_registers ADD COLUMN open_from TEXT NOT NULL DEFAULT ''
