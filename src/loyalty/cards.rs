//! Cards, their holders and the identifiers that find them
//! (`loyalty_cards`, `loyalty_holders`, `loyalty_identifiers`). Only this
//! module writes SQL against these tables; the register operations and the
//! operator side both come here.
//!
//! A holder's phone is stored in E.164 ([`PhoneE164::as_str`]) and leaves
//! this module only masked.

use sqlx::{AnyConnection, AnyExecutor};

use crate::core::phone::PhoneE164;
use crate::core::store::Backend;

/// A card as the operations see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Card {
    pub number: String,
    pub state: String,
    pub balance: i64,
    pub accumulated: i64,
    pub holder_name: String,
}

/// A card with its holder's contact, for the operator's card view.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CardView {
    pub state: String,
    pub balance: i64,
    pub accumulated: i64,
    pub holder_name: String,
    /// E.164 as stored; show it through [`masked_phone`] only.
    pub holder_phone: Option<String>,
}

/// An identifier (card number, barcode, magnetic track) of a card.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct IdentifierRow {
    pub kind: String,
    pub value: String,
}

/// The printed card number with all but the last four digits hidden: what
/// register answers and receipts show.
pub fn mask_number(number: &str) -> String {
    let n = number.chars().count();
    let tail: String = number.chars().skip(n.saturating_sub(4)).collect();
    format!("****{tail}")
}

/// Shown instead of a stored phone that does not read as E.164 (saved by an
/// older version that accepted landlines): nothing of it is revealed.
pub const UNREADABLE_PHONE: &str = "***";

/// A stored phone as it may be shown: masked, never in full.
pub fn masked_phone(stored: &str) -> String {
    PhoneE164::parse(stored)
        .map(|p| p.masked())
        .unwrap_or_else(|_| UNREADABLE_PHONE.to_string())
}

pub async fn load<'c>(db: impl AnyExecutor<'c>, number: &str) -> Result<Option<Card>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.number, c.state, c.balance, c.accumulated, h.name AS holder_name FROM loyalty_cards c \
         JOIN loyalty_holders h ON h.id = c.holder_id WHERE c.number = $1",
    )
    .bind(number)
    .fetch_optional(db)
    .await
}

pub async fn view<'c>(
    db: impl AnyExecutor<'c>,
    number: &str,
) -> Result<Option<CardView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.state, c.balance, c.accumulated, h.name AS holder_name, h.phone AS holder_phone \
         FROM loyalty_cards c JOIN loyalty_holders h ON h.id = c.holder_id WHERE c.number = $1",
    )
    .bind(number)
    .fetch_optional(db)
    .await
}

/// The card of the holder with this phone. A holder may have several
/// cards; the one that can be used is preferred.
pub async fn number_by_phone<'c>(
    db: impl AnyExecutor<'c>,
    phone: &PhoneE164,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT c.number FROM loyalty_cards c JOIN loyalty_holders h ON h.id = c.holder_id \
         WHERE h.phone = $1 ORDER BY CASE c.state WHEN 'active' THEN 0 WHEN 'inactive' THEN 1 ELSE 2 END, c.created_at LIMIT 1",
    )
    .bind(phone.as_str())
    .fetch_optional(db)
    .await
}

/// The card an identifier of `kind` (`card`, `barcode`, `track`) names.
pub async fn number_by_identifier<'c>(
    db: impl AnyExecutor<'c>,
    kind: &str,
    value: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT card_number FROM loyalty_identifiers WHERE value = $1 AND kind = $2")
        .bind(value)
        .bind(kind)
        .fetch_optional(db)
        .await
}

pub async fn identifiers<'c>(
    db: impl AnyExecutor<'c>,
    number: &str,
) -> Result<Vec<IdentifierRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, value FROM loyalty_identifiers WHERE card_number = $1 ORDER BY kind",
    )
    .bind(number)
    .fetch_all(db)
    .await
}

/// Serialises spending from one card for the rest of the transaction. On
/// PostgreSQL the card row is locked; SQLite has one writer already.
pub async fn lock(
    conn: &mut AnyConnection,
    backend: Backend,
    number: &str,
) -> Result<(), sqlx::Error> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT number FROM loyalty_cards WHERE number = $1 FOR UPDATE")
            .bind(number)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The cached balance (see [`super::ledger`]); `None` if there is no such
/// card.
pub async fn balance<'c>(
    db: impl AnyExecutor<'c>,
    number: &str,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT balance FROM loyalty_cards WHERE number = $1")
        .bind(number)
        .fetch_optional(db)
        .await
}

/// Moves the purchase total that decides the tier; never below zero.
pub async fn add_accumulated<'c>(
    db: impl AnyExecutor<'c>,
    number: &str,
    delta: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE loyalty_cards SET accumulated = CASE WHEN accumulated + $1 < 0 THEN 0 ELSE accumulated + $1 END WHERE number = $2")
        .bind(delta)
        .bind(number)
        .execute(db)
        .await?;
    Ok(())
}

/// Every card number, in order (the back office's resync of all cards).
pub async fn all_numbers<'c>(db: impl AnyExecutor<'c>) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT number FROM loyalty_cards ORDER BY number")
        .fetch_all(db)
        .await
}

/// Sets a card's state; `false` if there is no such card.
pub async fn set_state<'c>(
    db: impl AnyExecutor<'c>,
    number: &str,
    state: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("UPDATE loyalty_cards SET state = $1 WHERE number = $2")
        .bind(state)
        .bind(number)
        .execute(db)
        .await?;
    Ok(r.rows_affected() > 0)
}

pub async fn exists<'c>(db: impl AnyExecutor<'c>, number: &str) -> Result<bool, sqlx::Error> {
    Ok(balance(db, number).await?.is_some())
}

/// The holder with this phone, if one is known.
pub async fn holder_by_phone<'c>(
    db: impl AnyExecutor<'c>,
    phone: &PhoneE164,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM loyalty_holders WHERE phone = $1")
        .bind(phone.as_str())
        .fetch_optional(db)
        .await
}

/// Adds a holder and returns its id.
pub async fn insert_holder<'c>(
    db: impl AnyExecutor<'c>,
    name: &str,
    phone: Option<&PhoneE164>,
    now: i64,
) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO loyalty_holders (id, name, phone, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&id)
    .bind(name)
    .bind(phone.map(PhoneE164::as_str))
    .bind(now)
    .execute(db)
    .await?;
    Ok(id)
}

/// Adds a card with a zero balance.
pub async fn insert_card<'c>(
    db: impl AnyExecutor<'c>,
    number: &str,
    holder: &str,
    state: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO loyalty_cards (number, holder_id, state, balance, accumulated, created_at) VALUES ($1, $2, $3, 0, 0, $4)")
        .bind(number)
        .bind(holder)
        .bind(state)
        .bind(now)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn insert_identifier<'c>(
    db: impl AnyExecutor<'c>,
    kind: &str,
    value: &str,
    number: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO loyalty_identifiers (value, kind, card_number) VALUES ($1, $2, $3)")
        .bind(value)
        .bind(kind)
        .bind(number)
        .execute(db)
        .await?;
    Ok(())
}

/// A whole card row, as the in-memory owner ([`super::ops::owner`]) keeps it
/// and writes it back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct CardRow {
    pub number: String,
    pub holder_id: String,
    pub state: String,
    pub balance: i64,
    pub accumulated: i64,
    pub created_at: i64,
    pub holder_name: String,
}

impl CardRow {
    pub fn card(&self) -> Card {
        Card {
            number: self.number.clone(),
            state: self.state.clone(),
            balance: self.balance,
            accumulated: self.accumulated,
            holder_name: self.holder_name.clone(),
        }
    }
}

pub(crate) async fn load_row(
    conn: &mut AnyConnection,
    number: &str,
) -> Result<Option<CardRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.number, c.holder_id, c.state, c.balance, c.accumulated, c.created_at, h.name AS holder_name \
         FROM loyalty_cards c JOIN loyalty_holders h ON h.id = c.holder_id WHERE c.number = $1",
    )
    .bind(number)
    .fetch_optional(&mut *conn)
    .await
}

/// Writes cards' state, balance and accumulated total as they are now, 200
/// cards per statement (an upsert of rows that exist).
pub(crate) async fn write_rows(
    conn: &mut AnyConnection,
    backend: Backend,
    rows: &[CardRow],
) -> Result<(), sqlx::Error> {
    for chunk in rows.chunks(200) {
        let mut sql = crate::core::store::multi_row(
            backend,
            "INSERT INTO loyalty_cards (number, holder_id, state, balance, accumulated, created_at) VALUES ",
            chunk.len(),
            6,
        );
        sql.push_str(
            " ON CONFLICT (number) DO UPDATE SET state = excluded.state, balance = excluded.balance, accumulated = excluded.accumulated",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for c in chunk {
            q = q
                .bind(c.number.clone())
                .bind(c.holder_id.clone())
                .bind(c.state.clone())
                .bind(c.balance)
                .bind(c.accumulated)
                .bind(c.created_at);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_phones_show_masked_or_not_at_all() {
        assert_eq!(masked_phone("+79123456789"), "+7 912 ***-**-89");
        // A landline saved before phones were checked reveals nothing.
        assert_eq!(masked_phone("+74951234567"), UNREADABLE_PHONE);
        assert_eq!(mask_number("1000000001"), "****0001");
        assert_eq!(mask_number("901"), "****901");
    }
}
