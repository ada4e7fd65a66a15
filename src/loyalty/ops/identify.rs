//! Finding the card a register's identifier names, the same way for every
//! operation (blocked cards refused here).

use sqlx::AnyConnection;

use super::{CardRef, OpError};
use crate::loyalty::cards::{self, Card};

/// The card `id` names. `auto` tries card number, barcode, track, then
/// phone. Errors show the identifier through [`CardRef::shown`], so a
/// phone number never comes back in full.
pub async fn identify(conn: &mut AnyConnection, id: &CardRef) -> Result<Card, OpError> {
    let number = match id {
        CardRef::Card(v) => cards::number_by_identifier(&mut *conn, "card", v).await?,
        CardRef::Barcode(v) => cards::number_by_identifier(&mut *conn, "barcode", v).await?,
        CardRef::Track(v) => cards::number_by_identifier(&mut *conn, "track", v).await?,
        CardRef::Phone(p) => cards::number_by_phone(&mut *conn, p).await?,
        CardRef::Auto { value, phone } => {
            let mut found = None;
            for kind in ["card", "barcode", "track"] {
                found = cards::number_by_identifier(&mut *conn, kind, value).await?;
                if found.is_some() {
                    break;
                }
            }
            match (found, phone) {
                (None, Some(p)) => cards::number_by_phone(&mut *conn, p).await?,
                (found, _) => found,
            }
        }
    };
    let unknown = || OpError::UnknownCard(id.shown());
    let number = number.ok_or_else(unknown)?;
    let card = cards::load(&mut *conn, &number)
        .await?
        .ok_or_else(unknown)?;
    if card.state == "blocked" {
        return Err(OpError::CardBlocked(cards::mask_number(&card.number)));
    }
    Ok(card)
}
