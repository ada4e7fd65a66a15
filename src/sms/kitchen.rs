//! Kitchen progress of an order, read from `kdsstate` in notify events.
//!
//! The kitchen display (KDS) writes its state onto each dish and sometimes
//! onto the order itself. Seed 003 offers five steps a restaurant can pick
//! for the guest SMS; this module turns one event's order into the step it
//! has reached, so the threshold check upstream is a simple comparison.
//!
//! How an order's step follows from its parts (chosen and documented here
//! because r_keeper does not define it):
//!
//! 1. An order-level `kdsstate` that names a progress state (`sent` ..
//!    `collected`) wins: the KDS sets it when it handles the order as a
//!    whole (assembly of a takeaway order), and it is what the guest's
//!    order screen shows.
//! 2. Otherwise the order is as far as its *least advanced active dish*:
//!    "your order is ready" must not go out while the soup is still cooking.
//!    A dish is active when it went to the kitchen (non-empty `kdsstate`),
//!    is not `removed`, not a deleted line (`state="7"`) and has a positive
//!    quantity (a buy-back line is not cooked).
//! 3. A parked dish (`startpark`, waiting to be fired) and a dish released
//!    from parking (`endpark`) count as `sent`: the kitchen has it but has
//!    not started it, so they hold the order back.
//! 4. Unknown states are ignored rather than guessed at.
//! 5. No active dish and no order-level state: no step yet.

use rk7::{Dish, KdsState, LineState, Order};
use serde::{Deserialize, Serialize};

/// Kitchen progress, in the order a dish moves through it. The numbers are
/// the ones r_keeper's KDS uses (3 is "Приготовлено", `kdsReady`); `Sent`
/// (1) is below every selectable step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Sent = 1,
    Started = 2,
    Ready = 3,
    Taken = 4,
    Collect = 5,
    Collected = 6,
}

impl Step {
    /// Steps a restaurant may choose for the SMS.
    pub const SELECTABLE: [Step; 5] = [
        Step::Started,
        Step::Ready,
        Step::Taken,
        Step::Collect,
        Step::Collected,
    ];

    pub fn number(self) -> i64 {
        self as i64
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Sent => "sent",
            Step::Started => "started",
            Step::Ready => "ready",
            Step::Taken => "taken",
            Step::Collect => "collect",
            Step::Collected => "collected",
        }
    }

    /// The `{status}` a guest reads in the SMS.
    pub fn guest_text(self) -> &'static str {
        match self {
            Step::Sent => "принят",
            Step::Started => "готовится",
            Step::Ready => "готов",
            Step::Taken => "выдан",
            Step::Collect => "собирается",
            Step::Collected => "собран",
        }
    }

    /// Reads a selectable step from config or API: its name (`ready`, also
    /// the KDS's own `kdsReady`/`out`) or its number (`3`).
    pub fn parse_selectable(text: &str) -> Option<Step> {
        let t = text.trim().to_ascii_lowercase();
        let t = t.strip_prefix("kds").unwrap_or(&t);
        let step = match t {
            "2" | "started" => Step::Started,
            "3" | "ready" => Step::Ready,
            "4" | "taken" | "out" => Step::Taken,
            "5" | "collect" | "collecting" => Step::Collect,
            "6" | "collected" => Step::Collected,
            _ => return None,
        };
        Some(step)
    }

    /// The step of one `kdsstate`; `None` for "not in the kitchen",
    /// `removed` and unknown states.
    pub fn of_state(s: &KdsState) -> Option<Step> {
        match s {
            KdsState::Sent | KdsState::StartPark | KdsState::EndPark => Some(Step::Sent),
            KdsState::Started => Some(Step::Started),
            KdsState::Ready => Some(Step::Ready),
            KdsState::Taken => Some(Step::Taken),
            KdsState::Collect => Some(Step::Collect),
            KdsState::Collected => Some(Step::Collected),
            // Seed 003 names step (4) "Забрано" `out` in the kitchen's own
            // status list; some KDS builds write it so.
            KdsState::Other(o) if o.eq_ignore_ascii_case("out") => Some(Step::Taken),
            KdsState::Empty | KdsState::Removed | KdsState::Other(_) => None,
        }
    }
}

fn dish_step(d: &Dish) -> Option<Step> {
    if matches!(d.state, Some(LineState::Deleted)) {
        return None;
    }
    if d.quantity.is_some_and(|q| q.0 <= 0) {
        return None;
    }
    d.kds_state.as_ref().and_then(Step::of_state)
}

/// The step `order` has reached according to this event (rules in the
/// module docs). `extra_sessions` are the sessions written beside `<Order>`
/// (the notify layout).
pub fn order_step<'a>(
    order: &'a Order,
    extra_sessions: impl Iterator<Item = &'a rk7::Session>,
) -> Option<Step> {
    if let Some(s) = order.kds_state.as_ref().and_then(Step::of_state) {
        return Some(s);
    }
    order
        .sessions
        .iter()
        .chain(extra_sessions)
        .filter(|s| !matches!(s.state, Some(LineState::Deleted)))
        .flat_map(|s| s.dishes.iter())
        .filter_map(dish_step)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rk7::{Session, Thousandths};

    fn dish(state: &str) -> Dish {
        Dish {
            kds_state: Some(KdsState::parse(state)),
            quantity: Some(Thousandths(1000)),
            ..Dish::default()
        }
    }

    fn order(order_state: Option<&str>, dishes: Vec<Dish>) -> Order {
        Order {
            kds_state: order_state.map(KdsState::parse),
            sessions: vec![Session {
                dishes,
                ..Session::default()
            }],
            ..Order::default()
        }
    }

    fn step(o: &Order) -> Option<Step> {
        order_step(o, std::iter::empty())
    }

    #[test]
    fn least_advanced_active_dish_decides() {
        let o = order(
            None,
            vec![dish("ready"), dish("started"), dish("collected")],
        );
        assert_eq!(step(&o), Some(Step::Started));
        let o = order(None, vec![dish("ready"), dish("Ready")]);
        assert_eq!(step(&o), Some(Step::Ready));
    }

    #[test]
    fn removed_unknown_and_not_sent_dishes_are_ignored() {
        let o = order(
            None,
            vec![dish("ready"), dish("removed"), dish(""), dish("weird")],
        );
        assert_eq!(step(&o), Some(Step::Ready));
        let mut deleted = dish("sent");
        deleted.state = Some(LineState::Deleted);
        let mut buyback = dish("sent");
        buyback.quantity = Some(Thousandths(-1000));
        let o = order(None, vec![dish("taken"), deleted, buyback]);
        assert_eq!(step(&o), Some(Step::Taken));
    }

    /// Issue 26: `kdsstate="out"` is step (4), taken, as docs/sms.md says.
    #[test]
    fn out_is_read_as_taken() {
        let o = order(None, vec![dish("out"), dish("OUT")]);
        assert_eq!(step(&o), Some(Step::Taken));
        let o = order(Some("out"), vec![dish("ready")]);
        assert_eq!(step(&o), Some(Step::Taken));
    }

    #[test]
    fn parked_dishes_hold_the_order_back() {
        let o = order(None, vec![dish("ready"), dish("startpark")]);
        assert_eq!(step(&o), Some(Step::Sent));
        let o = order(None, vec![dish("ready"), dish("endpark")]);
        assert_eq!(step(&o), Some(Step::Sent));
    }

    #[test]
    fn order_level_state_takes_precedence() {
        let o = order(Some("collected"), vec![dish("started")]);
        assert_eq!(step(&o), Some(Step::Collected));
        // An empty or removed order-level value falls back to the dishes.
        let o = order(Some(""), vec![dish("ready")]);
        assert_eq!(step(&o), Some(Step::Ready));
        let o = order(Some("removed"), vec![dish("taken")]);
        assert_eq!(step(&o), Some(Step::Taken));
    }

    #[test]
    fn nothing_in_the_kitchen_is_no_step() {
        assert_eq!(step(&order(None, vec![])), None);
        assert_eq!(step(&order(None, vec![dish(""), dish("removed")])), None);
    }

    #[test]
    fn sessions_beside_the_order_count_too() {
        let o = order(None, vec![dish("ready")]);
        let beside = [Session {
            dishes: vec![dish("started")],
            ..Session::default()
        }];
        assert_eq!(order_step(&o, beside.iter()), Some(Step::Started));
    }

    #[test]
    fn selectable_steps_parse_by_name_and_number() {
        assert_eq!(Step::parse_selectable("3"), Some(Step::Ready));
        assert_eq!(Step::parse_selectable("kdsReady"), Some(Step::Ready));
        assert_eq!(Step::parse_selectable("out"), Some(Step::Taken));
        assert_eq!(Step::parse_selectable("Collected"), Some(Step::Collected));
        assert_eq!(Step::parse_selectable("sent"), None);
        assert_eq!(Step::parse_selectable("1"), None);
        assert_eq!(Step::parse_selectable("7"), None);
        assert!(Step::Collected > Step::Ready && Step::Ready > Step::Started);
    }
}
