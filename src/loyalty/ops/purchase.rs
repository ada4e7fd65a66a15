//! Purchase: prices the receipt for the card and either holds the bonus it
//! spends until confirm or cancel (online), or earns at once (offline
//! sales sent later by the register's queue, which may not spend).

use serde_json::{Value, json};

use super::{At, CardRef, OpError, Outcome, identify, lot_expiry, merge, record};
use crate::loyalty::ledger::{self, Meta};
use crate::loyalty::operations::{self, NewOperation};
use crate::loyalty::rules::{self, Line};
use crate::loyalty::{cards, catalog};

pub(super) async fn purchase(
    at: At<'_>,
    id: &CardRef,
    lines: &[Line],
    spend: i64,
    offline: bool,
) -> Result<Value, Outcome> {
    let At {
        conn,
        backend,
        settings,
        c,
        now,
    } = at;
    let found = identify(conn, id).await?;
    cards::lock(conn, backend, &found.number).await?;
    ledger::expire_lots(conn, &found.number, now).await?;
    // Re-read under the lock: the balance may have moved since identify.
    let card = cards::load(&mut *conn, &found.number)
        .await?
        .ok_or_else(|| OpError::UnknownCard(id.shown()))?;
    let h = operations::held(&mut *conn, &card.number, now).await?;
    let flags = catalog::flags_for(conn, lines).await?;
    let (p, earn) = priced(settings, c, &card, h, lines, &flags, spend, offline)?;
    let (status, expires, card_after, h_after) = if offline {
        let meta = Meta {
            kind: "earn",
            operation_id: Some(&c.operation_id),
            reason: Some("offline purchase"),
            actor: Some(&c.cashier),
            now,
        };
        ledger::credit(
            conn,
            &card.number,
            earn,
            lot_expiry(settings, now),
            ledger::ISSUED,
            meta,
        )
        .await?;
        cards::add_accumulated(&mut *conn, &card.number, p.net).await?;
        let after = cards::load(&mut *conn, &card.number)
            .await?
            .unwrap_or(card.clone());
        (operations::CONFIRMED, None, after, h)
    } else {
        let exp = now + settings.hold_ttl.as_millis() as i64;
        (operations::HELD, Some(exp), card.clone(), h + spend)
    };
    let answer = answer(
        settings,
        c,
        &p,
        status,
        offline,
        spend,
        earn,
        &card_after,
        h_after,
        expires.map(|e| e - now),
    );
    operations::insert(
        &mut *conn,
        NewOperation {
            card: Some(&card.number),
            status: Some(status),
            hold_expires_at: expires,
            offline,
            net: p.net,
            spend,
            earn,
            ..record(c, "purchase", now, &answer)
        },
    )
    .await?;
    Ok(answer)
}

/// The receipt priced for `card` with `held` reserved, and what it earns,
/// if the spend is allowed: the rules both deciding paths (row locks and
/// the in-memory owner) apply.
#[allow(clippy::too_many_arguments)]
pub(super) fn priced(
    settings: &crate::loyalty::Settings,
    c: &super::Common,
    card: &cards::Card,
    held: i64,
    lines: &[Line],
    flags: &std::collections::HashMap<String, rules::ProductFlags>,
    spend: i64,
    offline: bool,
) -> Result<(rules::Priced, i64), OpError> {
    if spend > 0 && card.state != "active" {
        return Err(OpError::NotActivated(cards::mask_number(&card.number)));
    }
    let tier = settings.rules.tier_for(card.accumulated);
    let p = rules::price(
        &settings.rules,
        tier,
        c.local_time,
        lines,
        &|g| flags.get(g).copied().unwrap_or_default(),
        !offline,
    );
    if spend > p.max_spend_by_receipt {
        return Err(OpError::OverReceiptShare {
            max: p.max_spend_by_receipt,
            requested: spend,
        });
    }
    let available = card.balance - held;
    if spend > available {
        return Err(OpError::NotEnough {
            available: available.max(0),
            requested: spend,
        });
    }
    let earn = rules::earn_after_spend(&p, spend);
    Ok((p, earn))
}

/// A purchase's answer; `expires_in_ms` for a hold.
#[allow(clippy::too_many_arguments)]
pub(super) fn answer(
    settings: &crate::loyalty::Settings,
    c: &super::Common,
    p: &rules::Priced,
    status: &str,
    offline: bool,
    spend: i64,
    earn: i64,
    card_after: &cards::Card,
    held_after: i64,
    expires_in_ms: Option<i64>,
) -> Value {
    let mut answer = merge(
        json!({
            "operation_id": c.operation_id,
            "status": status,
            "offline": offline,
            "lines": p.lines,
            "total": p.total,
            "discount": p.discount,
            "net": p.net,
            "bonus_spend": spend,
            "bonus_earn": earn,
            "to_pay": p.net - spend,
        }),
        super::card_json(settings, card_after, held_after),
    );
    if let Some(ms) = expires_in_ms {
        answer["hold_expires_in_secs"] = json!(ms / 1000);
    }
    answer
}
