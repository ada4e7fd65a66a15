//! Plays the business days of every cash server and builds its events.
//!
//! A day of one cash server, in its local time:
//!
//! * 08:00–08:50 the cash server starts (Situation 1 with only
//!   `<Server id/>`); a new driver run, so a new stream guid and seqnumber
//!   from 1;
//! * 09:00–09:30 each station starts (1, with Station and Server), 09:30–10:00
//!   its waiter signs in (21);
//! * 10:00–20:30 the orders of each station, spread over the day and
//!   overlapping as in a real hall (see [`ServerGen::normal_order`] for the
//!   steps of one order);
//! * on some days a banquet of 300–500 lines on the first station;
//! * 22:30 a return order of a dish sold earlier that day;
//! * 23:30–23:45 logoff (10), 23:45–23:59 station closing (18).
//!
//! Times are spread so that every event of a day stays on that day and in
//! this order for up to 50 cash servers and 99 stations each.
//!
//! The next day's events carry ShiftNum + 1 and the next ShiftDate: r_keeper
//! sends nothing when the common shift closes, the change of number is the
//! only sign.
//!
//! Notable operations are placed so that a default day (one cash server, two
//! stations, twenty orders each) has every kind at least once: the first
//! seven orders of each cash server day (counted across its stations, `n`
//! below) are forced to carry one kind each, the rest draw them at random.
//!
//! Events are produced order by order and then sorted by their time (ties
//! keep production order) before seqnumbers are given, which is how
//! interleaved stations look on the wire. Each order event carries the whole
//! current order, as r_keeper does, with Sessions beside `<Order>` as in the
//! seed-001 sample.
//!
//! Signs and sums (r_keeper's conventions as we understand them; the public
//! documentation does not spell them out): a dish line's `amount` is
//! `price × quantity / 1000`; a discount line and `discountSum` are negative;
//! `orderSum` is what the guest pays (dish amounts plus the negative
//! discount); `unpaidSum` is `orderSum` minus the payments not deleted. A
//! voided dish stays in the order with quantity and amount 0 and a `<Void>`
//! carrying what was removed.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rk7::{
    ChangeLog, ChangeLogDish, Discount, Dish, Event, Guest, Guests, Guid, Item, KdsState,
    LineState, LocalDateTime, Order, Pay, Person, PrintCheck, Prop, Ref, RestCode, Server, Session,
    Situation, SourceOrder, Station, Void,
};

use super::truth::{OpTruth, OrderTruth, StationEventTruth, Truth};
use super::{Generated, Scenario, ServerStream, SimEvent};

/// (id, code, name, price in kopecks). Russian names as on real menus, so
/// the UTF-8 path is exercised by every run.
const MENU: &[(i64, i64, &str, i64)] = &[
    (1001, 101, "Борщ с пампушками", 42000),
    (1002, 102, "Солянка мясная", 46000),
    (1003, 103, "Цезарь с курицей", 54000),
    (1004, 104, "Оливье", 38000),
    (1005, 105, "Греческий салат", 44000),
    (1006, 106, "Пельмени домашние", 49000),
    (1007, 107, "Стейк рибай", 189000),
    (1008, 108, "Котлета по-киевски", 62000),
    (1009, 109, "Судак с овощами", 78000),
    (1010, 110, "Паста карбонара", 56000),
    (1011, 111, "Пицца Маргарита", 59000),
    (1012, 112, "Бефстроганов", 68000),
    (1013, 113, "Блины с икрой", 95000),
    (1014, 114, "Сырники", 36000),
    (1015, 115, "Чизкейк", 39000),
    (1016, 116, "Медовик", 34000),
    (1017, 117, "Морс клюквенный", 18000),
    (1018, 118, "Квас", 15000),
    (1019, 119, "Чай чёрный", 22000),
    (1020, 120, "Капучино", 26000),
    (1021, 121, "Эспрессо", 18000),
    (1022, 122, "Сок апельсиновый", 29000),
    (1023, 123, "Вода минеральная", 16000),
    (1024, 124, "Хлебная корзина", 12000),
];

const WAITERS: &[&str] = &[
    "Иванова Анна",
    "Петров Сергей",
    "Сидорова Мария",
    "Кузнецов Алексей",
    "Попова Елена",
    "Васильев Дмитрий",
    "Морозова Ольга",
    "Новиков Игорь",
];

/// (code, name) of the two currencies every restaurant takes.
const CASH: (i64, &str) = (1, "Наличные");
const CARD: (i64, &str) = (2, "Банковская карта");

/// Generates the events and the truth for `s`. Pure: no clock, no I/O, no
/// hash-map iteration; the same scenario gives the same bytes.
pub fn generate(s: &Scenario) -> Generated {
    let mut truth = Truth::default();
    let mut servers = Vec::new();
    for r in 0..s.restaurants {
        let rest_code = (199_990_100 + u64::from(r)).to_string();
        for c in 0..s.cash_servers {
            let mut g = ServerGen::new(s, r, c, &rest_code);
            for d in 0..s.days {
                g.day(d, &mut truth);
            }
            servers.push(ServerStream {
                rest_code: rest_code.clone(),
                server_name: g.server_name.clone(),
                events: g.out,
            });
        }
    }
    Generated { servers, truth }
}

/// A station of a cash server and the waiter working on it.
struct StationDef {
    id: i64,
    code: i64,
    name: String,
    net_name: String,
    waiter: Person,
}

/// An event waiting for its seqnumber.
struct Pending {
    at: NaiveDateTime,
    event: Event,
}

/// The order being built, with what the truth needs.
struct OrderB {
    guid: Guid,
    visit: i64,
    ident: i64,
    station: usize,
    table: Ref,
    open_time: NaiveDateTime,
    version: i64,
    sessions: Vec<Session>,
    kds: Option<KdsState>,
    kds_steps: Vec<String>,
    phone: Option<String>,
    source: Option<SourceOrder>,
    deleted: bool,
    finished: bool,
    next_uni: i64,
    discount: i64,
    events: u32,
    last_at: NaiveDateTime,
    banquet: bool,
}

impl OrderB {
    fn subtotal(&self) -> i64 {
        self.sessions
            .iter()
            .flat_map(|s| s.dishes.iter())
            .map(|d| d.amount.map_or(0, |a| a.0))
            .sum()
    }
    fn total(&self) -> i64 {
        self.subtotal() - self.discount
    }
    fn paid(&self) -> i64 {
        self.sessions
            .iter()
            .flat_map(|s| s.pays.iter())
            .filter(|p| p.deleted != Some(true))
            .map(|p| p.amount.map_or(0, |a| a.0))
            .sum()
    }
    fn pieces(&self) -> i64 {
        self.sessions
            .iter()
            .flat_map(|s| s.dishes.iter())
            .map(|d| d.quantity.map_or(0, |q| q.0.abs()) / 1000)
            .sum()
    }
    fn last_session(&mut self) -> &mut Session {
        self.sessions.last_mut().expect("an order has a session")
    }
    fn set_line_state(&mut self, state: LineState) {
        for s in &mut self.sessions {
            s.state = Some(state);
            for d in &mut s.dishes {
                if d.quantity.is_some_and(|q| q.0 != 0) {
                    d.state = Some(state);
                }
            }
        }
    }
}

/// Which notable operations one ordinary order goes through.
#[derive(Default, Clone, Copy)]
struct Plan {
    unsaved_deletion: bool,
    void_after_print: bool,
    second_round: bool,
    discount_percent: i64,
    cancelled_prebill: bool,
    card: bool,
    deleted_receipt: bool,
    kds: bool,
    /// The kitchen marks the order ready without marking it started first
    /// (real KDS screens do): consumers waiting for "started" must cope.
    kds_skips_started: bool,
    delete_whole_order: bool,
}

/// Everything one cash server does over the run.
struct ServerGen<'a> {
    s: &'a Scenario,
    rng: StdRng,
    rest_code: String,
    server_name: String,
    server: Server,
    stations: Vec<StationDef>,
    manager: Person,
    out: Vec<SimEvent>,
    // Per day:
    pending: Vec<Pending>,
    shift_num: i64,
    shift_date: NaiveDateTime,
    date: NaiveDate,
    check_num: i64,
    bill_num: i64,
    order_ident: i64,
    /// Orders of the day that were paid and closed: candidates for the
    /// evening's return order.
    closed_today: Vec<(SourceOrder, Dish, usize)>,
}

fn person(id: i64, code: i64, name: &str, role: (i64, i64, &str)) -> Person {
    Person {
        id: Some(id),
        code: Some(code),
        name: Some(name.to_string()),
        role: Some(Ref {
            id: Some(role.0),
            code: Some(role.1),
            name: Some(role.2.to_string()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn ldt(t: NaiveDateTime) -> LocalDateTime {
    LocalDateTime::new(t)
}

fn at(date: NaiveDate, h: u32, m: u32) -> NaiveDateTime {
    date.and_time(NaiveTime::from_hms_opt(h, m, 0).expect("a valid time"))
}

impl<'a> ServerGen<'a> {
    fn new(s: &'a Scenario, r: u32, c: u32, rest_code: &str) -> Self {
        // One generator per cash server, seeded from (seed, restaurant,
        // server) so streams do not depend on each other's random draws.
        let mut rng = StdRng::seed_from_u64(
            s.seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add((u64::from(r) << 32) | u64::from(c))
                .rotate_left(17),
        );
        let server_id = 15002 + i64::from(c);
        let server_name = format!("MID{}", c + 1);
        let server = Server {
            id: Some(server_id),
            code: Some(server_id),
            name: Some(server_name.clone()),
            net_name: Some(format!("{server_name}_{rest_code}")),
            ..Default::default()
        };
        let stations = (0..s.stations)
            .map(|st| {
                let code = i64::from(c) * 100 + i64::from(st) + 1;
                let w = (rng.random_range(0..WAITERS.len()) + st as usize) % WAITERS.len();
                StationDef {
                    id: 15100 + i64::from(c) * 100 + i64::from(st),
                    code,
                    name: format!("CASH{code}"),
                    net_name: format!("CASH{code}_{rest_code}"),
                    waiter: person(10 + code, 100 + code, WAITERS[w], (100_001, 1, "Официанты")),
                }
            })
            .collect();
        Self {
            s,
            rng,
            rest_code: rest_code.to_string(),
            server_name,
            server,
            stations,
            manager: person(2, 9, "Смирнов Олег", (100_009, 9, "Менеджеры")),
            out: Vec::new(),
            pending: Vec::new(),
            shift_num: 0,
            shift_date: at(s.start, 0, 0),
            date: s.start,
            check_num: 0,
            bill_num: 0,
            order_ident: 0,
            closed_today: Vec::new(),
        }
    }

    fn guid(&mut self) -> Guid {
        let v: u128 = self.rng.random();
        // Version 4, RFC 4122 variant: looks like what Windows generates.
        let v = (v & !(0xF << 76)) | (0x4 << 76);
        let v = (v & !(0xC << 60)) | (0x8 << 60);
        Guid::from_u128(v)
    }

    /// Moves `t` forward by a random number of seconds in `lo..=hi`.
    fn step(&mut self, t: &mut NaiveDateTime, lo: i64, hi: i64) -> NaiveDateTime {
        *t += Duration::seconds(self.rng.random_range(lo..=hi));
        *t
    }

    fn base(&self, situation: Situation, name: &str, t: NaiveDateTime) -> Event {
        Event {
            rest_code: Some(RestCode(self.rest_code.clone())),
            date_time: Some(ldt(t)),
            name: Some(name.to_string()),
            shift_num: Some(self.shift_num),
            shift_date: Some(ldt(self.shift_date)),
            ..Event::new(situation)
        }
    }

    fn station_el(&self, i: usize, net: bool) -> Station {
        let st = &self.stations[i];
        Station {
            id: Some(st.id),
            code: Some(st.code),
            name: Some(st.name.clone()),
            net_name: net.then(|| st.net_name.clone()),
            ..Default::default()
        }
    }

    fn push(&mut self, t: NaiveDateTime, event: Event) {
        self.pending.push(Pending { at: t, event });
    }

    fn station_event(
        &mut self,
        i: usize,
        sit: Situation,
        name: &str,
        t: NaiveDateTime,
        truth: &mut Truth,
    ) {
        let mut e = self.base(sit, name, t);
        e.station = Some(self.station_el(i, true));
        e.server = Some(self.server.clone());
        if matches!(sit, Situation::StationSignIn | Situation::StationLocked) {
            e.waiter = Some(self.stations[i].waiter.clone());
        }
        e.items = vec![Item::default()];
        self.push(t, e);
        if sit != Situation::ServerOrStationStarted {
            truth.station_events.push(StationEventTruth {
                rest_code: self.rest_code.clone(),
                server_name: self.server_name.clone(),
                station_code: self.stations[i].code,
                situation: sit.code(),
                at: ldt(t).to_string(),
            });
        }
    }

    /// One business day `d` (0-based) of this cash server.
    fn day(&mut self, d: u32, truth: &mut Truth) {
        self.date = self.s.start + Duration::days(i64::from(d));
        self.shift_num = i64::from(d) + 1;
        self.shift_date = at(self.date, 0, 0);
        self.check_num = 0;
        self.bill_num = 0;
        self.order_ident = 0;
        self.closed_today.clear();
        let date = self.date;
        let c = self.server.id.unwrap_or(0) - 15002;
        truth.shift_mut(
            &self.rest_code,
            self.shift_num,
            &ldt(self.shift_date).to_string(),
        );

        // Cash server start: only <Server id/>.
        let mut t = at(date, 8, 0) + Duration::minutes(c % 50);
        self.step(&mut t, 0, 59);
        let mut e = self.base(Situation::ServerOrStationStarted, "Started", t);
        e.server = Some(Server {
            id: self.server.id,
            ..Default::default()
        });
        e.items = vec![Item::default()];
        self.push(t, e);

        for i in 0..self.stations.len() {
            let mut t = at(date, 9, 0) + Duration::minutes(i as i64 % 30);
            self.step(&mut t, 0, 59);
            self.station_event(i, Situation::ServerOrStationStarted, "Started", t, truth);
            let mut t = at(date, 9, 30) + Duration::minutes(i as i64 % 30);
            self.step(&mut t, 0, 59);
            self.station_event(i, Situation::StationSignIn, "Login", t, truth);
        }

        // Ordinary orders, counted across stations so that the forced
        // operations land on the first orders of the day whatever the split.
        let k = self.s.orders.max(1) as i64;
        let span = 630; // minutes from 10:00 to 20:30
        for i in 0..self.s.orders {
            for st in 0..self.stations.len() {
                let n = i as usize * self.stations.len() + st;
                let mut t0 = at(date, 10, 0)
                    + Duration::minutes(i64::from(i) * span / k + (st as i64 % 10) * 3);
                self.step(&mut t0, 0, 179);
                let plan = self.plan(n);
                self.normal_order(st, t0, plan, truth);
            }
        }

        // Banquets now and then: every third day of a restaurant.
        let r = self.rest_code.parse::<u64>().unwrap_or(0) % 100;
        if c == 0 && !self.stations.is_empty() && (u64::from(d) + r) % 3 == 2 {
            let mut t0 = at(date, 17, 0);
            self.step(&mut t0, 0, 600);
            self.banquet(0, t0, truth);
        }

        // A return of a dish sold earlier today.
        if let Some((src, dish, st)) = self.closed_today.first().cloned() {
            let mut t0 = at(date, 22, 30);
            self.step(&mut t0, 0, 600);
            self.return_order(st, t0, src, dish, truth);
        }

        for i in 0..self.stations.len() {
            let mut t = at(date, 23, 30) + Duration::minutes(i as i64 % 15);
            self.step(&mut t, 0, 59);
            self.station_event(i, Situation::StationLocked, "Logoff", t, truth);
            let mut t = at(date, 23, 45) + Duration::minutes(i as i64 % 14);
            self.step(&mut t, 0, 59);
            self.station_event(i, Situation::StationClosed, "Station Closed", t, truth);
        }

        // The driver run of this day: one guid, seqnumber from 1, events in
        // time order (stable, so ties keep the order they were made in).
        let stream = self.guid();
        let mut pending = std::mem::take(&mut self.pending);
        pending.sort_by_key(|p| p.at);
        for (i, p) in pending.into_iter().enumerate() {
            let mut event = p.event;
            event.seqnumber = Some(i as u64 + 1);
            event.guid = Some(stream.clone());
            let xml = rk7::write(&event);
            self.out.push(SimEvent { event, xml });
        }
    }

    /// Decides the notable operations of ordinary order `n` of the day.
    fn plan(&mut self, n: usize) -> Plan {
        let mut p = Plan {
            kds: self.rng.random_bool(0.8),
            card: self.rng.random_bool(0.55),
            second_round: self.rng.random_bool(0.25),
            ..Default::default()
        };
        match n {
            0 => {
                p.card = true;
                p.kds = true;
            }
            1 => {
                p.deleted_receipt = true;
                p.card = false;
                p.kds = true;
            }
            2 => p.cancelled_prebill = true,
            3 => {
                p.void_after_print = true;
                p.kds = true;
            }
            4 => p.unsaved_deletion = true,
            5 => p.delete_whole_order = true,
            6 => p.discount_percent = 10,
            _ => {
                p.deleted_receipt = self.rng.random_bool(0.03);
                p.cancelled_prebill = self.rng.random_bool(0.05);
                p.void_after_print = self.rng.random_bool(0.08);
                p.unsaved_deletion = self.rng.random_bool(0.08);
                p.delete_whole_order = self.rng.random_bool(0.03);
                p.kds_skips_started = self.rng.random_bool(0.1);
                if self.rng.random_bool(0.15) {
                    p.discount_percent = [5, 10, 15, 20][self.rng.random_range(0..4)];
                }
            }
        }
        p
    }

    fn new_dish(&mut self, ob: &mut OrderB, menu: usize, qty: i64) -> Dish {
        let (id, code, name, price) = MENU[menu];
        let uni = ob.next_uni;
        ob.next_uni += 1;
        Dish {
            id: Some(id),
            code: Some(code),
            name: Some(name.to_string()),
            uni: Some(uni),
            line_guid: Some(self.guid()),
            state: Some(LineState::Open),
            price: Some(rk7::Kopecks(price)),
            amount: Some(rk7::Kopecks(price * qty / 1000)),
            quantity: Some(rk7::Thousandths(qty)),
            new: Some(true),
            ..Default::default()
        }
    }

    fn new_session(&mut self, ob: &OrderB, t: NaiveDateTime) -> Session {
        let uni = ob.sessions.len() as i64 + 1;
        let st = ob.station;
        let w = self.stations[st].waiter.clone();
        Session {
            uni: Some(uni),
            line_guid: Some(self.guid()),
            state: Some(LineState::Open),
            session_id: Some(uni),
            is_draft: Some(false),
            remind_time: Some(ldt(t)),
            start_service: Some(ldt(t)),
            printed: Some(false),
            cook_mins: Some(0),
            station: Some(self.station_el(st, false)),
            author: Some(w.clone()),
            creator: Some(w),
            course: Some(Ref {
                id: Some(1),
                code: Some(1),
                name: Some("Cook later".into()),
                ..Default::default()
            }),
            price_scale: Some(Ref {
                id: Some(3),
                code: Some(1),
                name: Some("Main".into()),
                ..Default::default()
            }),
            trade_group: Some(Ref {
                id: Some(7),
                code: Some(1),
                name: Some("By default".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn open_order(&mut self, st: usize, t0: NaiveDateTime) -> OrderB {
        self.order_ident += 1;
        let table_code = self.rng.random_range(1..=40);
        let phone = (self.rng.random_range(0..100) < self.s.phone_share_percent)
            .then(|| format!("+79{:09}", self.rng.random_range(0..1_000_000_000u64)));
        OrderB {
            guid: self.guid(),
            visit: self.rng.random_range(100_000_000..999_999_999),
            ident: 255 + self.order_ident,
            station: st,
            table: Ref {
                id: Some(1_000_200 + table_code),
                code: Some(table_code),
                name: Some(table_code.to_string()),
                ..Default::default()
            },
            open_time: t0,
            version: 0,
            sessions: Vec::new(),
            kds: None,
            kds_steps: Vec::new(),
            phone,
            source: None,
            deleted: false,
            finished: false,
            next_uni: 1,
            discount: 0,
            events: 0,
            last_at: t0,
            banquet: false,
        }
    }

    fn order_el(&self, ob: &OrderB) -> Order {
        let w = self.stations[ob.station].waiter.clone();
        let total = ob.total();
        let paid = ob.paid();
        let mut props = Vec::new();
        if let Some(p) = &ob.phone {
            props.push(Prop {
                name: Some("phone".into()),
                value: Some(p.clone()),
                ..Default::default()
            });
        }
        Order {
            visit: Some(ob.visit),
            order_ident: Some(ob.ident),
            guid: Some(ob.guid.clone()),
            order_name: ob.table.name.clone(),
            version: Some(ob.version),
            crc32: Some(0),
            order_sum: Some(rk7::Kopecks(total)),
            discount_sum: Some(rk7::Kopecks(-ob.discount)),
            unpaid_sum: Some(rk7::Kopecks(total - paid)),
            total_pieces: Some(ob.pieces()),
            paid: Some(total != 0 && total == paid),
            finished: Some(ob.finished),
            deleted: ob.deleted.then_some(true),
            locked: Some(!ob.finished && !ob.deleted),
            purchase: ob.source.is_some().then_some(true),
            open_time: Some(ldt(ob.open_time)),
            seq_number: Some(1),
            persistent_comment: Some(String::new()),
            non_persistent_comment: Some(String::new()),
            kds_state: ob.kds.clone(),
            creator: Some(w.clone()),
            waiter: Some(w),
            station: Some(self.station_el(ob.station, false)),
            order_category: Some(Ref {
                id: Some(10033),
                code: Some(1),
                name: Some("Main".into()),
                ..Default::default()
            }),
            order_type: Some(Ref {
                id: Some(10069),
                code: Some(9001),
                name: Some("not selected".into()),
                ..Default::default()
            }),
            table: Some(ob.table.clone()),
            guests: Some(Guests {
                count: Some(1),
                guests: vec![Guest {
                    guest_label: Some("1".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            external_props: props,
            source_order: ob.source.clone(),
            ..Default::default()
        }
    }

    /// Emits an order event carrying the order as it is now. `header_only`
    /// leaves the sessions out (an "Open Order" event, Situation 12).
    fn emit(
        &mut self,
        ob: &mut OrderB,
        sit: Situation,
        name: &str,
        t: NaiveDateTime,
        change: Vec<ChangeLogDish>,
        header_only: bool,
    ) {
        let mut e = self.base(sit, name, t);
        e.station = Some(self.station_el(ob.station, true));
        e.server = Some(self.server.clone());
        e.waiter = Some(self.stations[ob.station].waiter.clone());
        e.order = Some(self.order_el(ob));
        if !header_only {
            e.sessions = ob.sessions.clone();
        }
        if !change.is_empty() {
            e.change_log = Some(ChangeLog {
                dishes: change,
                ..Default::default()
            });
        }
        e.items = vec![Item {
            class_name: Some("TOrder".into()),
            ..Default::default()
        }];
        self.push(t, e);
        ob.version += 1;
        ob.events += 1;
        ob.last_at = t;
        // After an event the lines are no longer new.
        for s in &mut ob.sessions {
            for d in &mut s.dishes {
                d.new = None;
            }
        }
    }

    fn set_kds(&mut self, ob: &mut OrderB, state: KdsState, session: usize) {
        ob.kds_steps.push(state.as_str().to_string());
        ob.kds = Some(state.clone());
        if let Some(s) = ob.sessions.get_mut(session) {
            for d in &mut s.dishes {
                if d.quantity.is_some_and(|q| q.0 != 0) {
                    d.kds_state = Some(state.clone());
                }
            }
        }
    }

    fn op(&self, ob: &OrderB, t: NaiveDateTime, amount: i64, who: &str, detail: String) -> OpTruth {
        OpTruth {
            rest_code: self.rest_code.clone(),
            server_name: self.server_name.clone(),
            station_code: self.stations[ob.station].code,
            shift_num: self.shift_num,
            order_guid: ob.guid.canonical(),
            at: ldt(t).to_string(),
            amount,
            who: who.to_string(),
            detail,
        }
    }

    /// Adds `count` dishes to a new session and emits "Order Changed".
    fn add_round(&mut self, ob: &mut OrderB, t: NaiveDateTime, count: usize) {
        let s = self.new_session(ob, t);
        ob.sessions.push(s);
        let mut change = Vec::new();
        for _ in 0..count {
            let m = self.rng.random_range(0..MENU.len());
            let qty = [1000, 1000, 1000, 2000, 500][self.rng.random_range(0..5)];
            let d = self.new_dish(ob, m, qty);
            change.push(ChangeLogDish {
                id: d.id,
                code: d.code,
                name: d.name.clone(),
                uni: d.uni,
                old_value: Some(rk7::Thousandths(0)),
                new_value: d.quantity,
                new: Some(true),
                ..Default::default()
            });
            ob.last_session().dishes.push(d);
        }
        self.emit(
            ob,
            Situation::OrderChanged,
            "Order Changed",
            t,
            change,
            false,
        );
    }

    /// Saves the open lines: they go to the kitchen (printed).
    fn save(&mut self, ob: &mut OrderB, t: NaiveDateTime) {
        let s = ob.last_session();
        s.state = Some(LineState::Fixed);
        s.printed = Some(true);
        for d in &mut s.dishes {
            d.state = Some(LineState::Fixed);
        }
        self.emit(
            ob,
            Situation::OrderSaved,
            "Save Order",
            t,
            Vec::new(),
            false,
        );
    }

    /// Removes the last dish of the last session, which was never saved,
    /// records it in the truth and returns its ChangeLog entry (`q -> 0`).
    fn remove_unsaved(
        &mut self,
        ob: &mut OrderB,
        t: NaiveDateTime,
        truth: &mut Truth,
    ) -> Option<ChangeLogDish> {
        let d = ob.last_session().dishes.pop()?;
        let amount = d.amount.map_or(0, |a| a.0);
        let who = self.stations[ob.station]
            .waiter
            .name
            .clone()
            .unwrap_or_default();
        let name = d.name.clone().unwrap_or_default();
        truth
            .unsaved_deletions
            .push(self.op(ob, t, amount, &who, name));
        Some(ChangeLogDish {
            id: d.id,
            code: d.code,
            name: d.name,
            uni: d.uni,
            old_value: d.quantity,
            new_value: Some(rk7::Thousandths(0)),
            ..Default::default()
        })
    }

    fn prebill(&mut self, ob: &mut OrderB, t: NaiveDateTime) {
        self.bill_num += 1;
        let author = self.stations[ob.station].waiter.clone();
        let total = ob.total();
        ob.last_session().print_checks.push(PrintCheck {
            check_num: Some(self.bill_num),
            amount: Some(rk7::Kopecks(total)),
            unpaid_sum: Some(rk7::Kopecks(total)),
            state: Some(LineState::Printed),
            bill: Some(true),
            print_time: Some(ldt(t)),
            author: Some(author),
            ..Default::default()
        });
        self.emit(
            ob,
            Situation::OrderChanged,
            "Order Changed",
            t,
            Vec::new(),
            false,
        );
    }

    /// Pays the whole unpaid sum in one currency and closes a receipt.
    fn pay(&mut self, ob: &mut OrderB, t: &mut NaiveDateTime, currency: (i64, &str)) {
        let mut t24 = *t;
        self.emit(
            ob,
            Situation::ReceiptPrintMode,
            "Receipt Print Mode",
            t24,
            Vec::new(),
            false,
        );
        let tr = self.step(&mut t24, 20, 90);
        *t = tr;
        let amount = ob.total() - ob.paid();
        let card = currency == CARD;
        let pay = Pay {
            id: Some(currency.0),
            code: Some(currency.0),
            name: Some(currency.1.to_string()),
            amount: Some(rk7::Kopecks(amount)),
            basic_sum: Some(rk7::Kopecks(amount)),
            card_code: card.then(|| format!("****{:04}", self.rng.random_range(0..10_000))),
            transaction_status: card.then_some(rk7::TransactionStatus::Confirmed),
            auth_code: card.then(|| format!("{:06}", self.rng.random_range(0..1_000_000))),
            ..Default::default()
        };
        self.check_num += 1;
        let fiscal = format!(
            "{}{:08}",
            self.shift_num,
            self.rng.random_range(0..100_000_000)
        );
        let author = self.stations[ob.station].waiter.clone();
        let check = PrintCheck {
            check_num: Some(self.check_num),
            amount: Some(rk7::Kopecks(amount)),
            unpaid_sum: Some(rk7::Kopecks(0)),
            global_fiscal_id: Some(fiscal),
            state: Some(LineState::Closed),
            bill: Some(false),
            print_time: Some(ldt(tr)),
            author: Some(author),
            pays: vec![pay.clone()],
            ..Default::default()
        };
        let s = ob.last_session();
        s.pays.push(pay);
        s.print_checks.push(check);
        ob.set_line_state(LineState::Closed);
        self.emit(
            ob,
            Situation::ReceiptClosed,
            "Receipt Closed",
            tr,
            Vec::new(),
            false,
        );
    }

    fn close(&mut self, ob: &mut OrderB, t: NaiveDateTime) {
        ob.finished = true;
        self.emit(
            ob,
            Situation::OrderClosed,
            "Close Order",
            t,
            Vec::new(),
            false,
        );
    }

    /// One ordinary order, from "New Order" to "Close Order":
    /// new (11) → dishes added (3) → [an unsaved dish deleted (3)] → saved
    /// (13, printed to the kitchen, kdsstate sent) → [KDS started, ready,
    /// taken (3 each); now and then "started" is skipped] →
    /// [a dish voided (3)] → [open again (12), second round (3), saved (13)]
    /// → [discount (4)] → pre-bill (3) → [pre-bill cancelled (3), printed
    /// again (3)] → receipt print mode (24) → receipt closed (5) →
    /// [receipt deleted (14), paid again (24, 5)] → close (9).
    /// An order planned for deletion stops after the dishes are added: they
    /// are deleted unsaved and the order goes out with `deleted="1"`.
    fn normal_order(&mut self, st: usize, t0: NaiveDateTime, plan: Plan, truth: &mut Truth) {
        let mut ob = self.open_order(st, t0);
        let waiter = self.stations[st].waiter.name.clone().unwrap_or_default();
        let manager = self.manager.name.clone().unwrap_or_default();
        let mut t = t0;
        // r_keeper opens the order with an empty session (as the driver
        // documentation's new-order sample shows).
        let s = self.new_session(&ob, t);
        ob.sessions.push(s);
        self.emit(
            &mut ob,
            Situation::NewOrder,
            "New Order",
            t,
            Vec::new(),
            false,
        );
        ob.sessions.clear();

        let n = self.rng.random_range(2..=6);
        let tt = self.step(&mut t, 30, 180);
        self.add_round(&mut ob, tt, n);

        if plan.delete_whole_order {
            let tt = self.step(&mut t, 30, 120);
            ob.deleted = true;
            let mut change = Vec::new();
            while let Some(c) = self.remove_unsaved(&mut ob, tt, truth) {
                change.push(c);
            }
            self.emit(
                &mut ob,
                Situation::OrderChanged,
                "Order Changed",
                tt,
                change,
                false,
            );
            self.finish_order(ob, "deleted", false, truth);
            return;
        }
        if plan.unsaved_deletion {
            let tt = self.step(&mut t, 20, 90);
            let change: Vec<_> = self
                .remove_unsaved(&mut ob, tt, truth)
                .into_iter()
                .collect();
            self.emit(
                &mut ob,
                Situation::OrderChanged,
                "Order Changed",
                tt,
                change,
                false,
            );
        }
        let tt = self.step(&mut t, 20, 120);
        if plan.kds {
            self.set_kds(&mut ob, KdsState::Sent, 0);
        }
        self.save(&mut ob, tt);
        if plan.kds {
            for (state, lo, hi) in [
                (KdsState::Started, 60, 300),
                (KdsState::Ready, 300, 1200),
                (KdsState::Taken, 30, 240),
            ] {
                if state == KdsState::Started && plan.kds_skips_started {
                    continue;
                }
                let tt = self.step(&mut t, lo, hi);
                self.set_kds(&mut ob, state, 0);
                self.emit(
                    &mut ob,
                    Situation::OrderChanged,
                    "Order Changed",
                    tt,
                    Vec::new(),
                    false,
                );
            }
        }
        if plan.void_after_print {
            let tt = self.step(&mut t, 60, 600);
            let manager_p = self.manager.clone();
            let reason = ["Ошибка официанта", "Гость отказался", "Долгое ожидание"]
                [self.rng.random_range(0..3)];
            let d = ob.sessions[0]
                .dishes
                .iter_mut()
                .find(|d| d.quantity.is_some_and(|q| q.0 > 0));
            if let Some(d) = d {
                let (q, a) = (d.quantity, d.amount);
                d.voids.push(Void {
                    id: Some(1),
                    code: Some(1),
                    name: Some("Удаление после печати".into()),
                    date_time: Some(ldt(tt)),
                    quantity: q,
                    amount: a,
                    open_name: Some(reason.to_string()),
                    author: Some(manager_p),
                    ..Default::default()
                });
                d.quantity = Some(rk7::Thousandths(0));
                d.amount = Some(rk7::Kopecks(0));
                d.state = Some(LineState::Deleted);
                let change = vec![ChangeLogDish {
                    id: d.id,
                    code: d.code,
                    name: d.name.clone(),
                    uni: d.uni,
                    old_value: q,
                    new_value: Some(rk7::Thousandths(0)),
                    ..Default::default()
                }];
                let detail = format!("{}: {}", d.name.clone().unwrap_or_default(), reason);
                let amount = a.map_or(0, |a| a.0);
                truth
                    .voids_after_print
                    .push(self.op(&ob, tt, amount, &manager, detail));
                self.emit(
                    &mut ob,
                    Situation::OrderChanged,
                    "Order Changed",
                    tt,
                    change,
                    false,
                );
            }
        }
        if plan.second_round {
            let tt = self.step(&mut t, 300, 1200);
            self.emit(
                &mut ob,
                Situation::OrderOpened,
                "Open Order",
                tt,
                Vec::new(),
                true,
            );
            let n = self.rng.random_range(1..=3);
            let tt = self.step(&mut t, 20, 120);
            self.add_round(&mut ob, tt, n);
            let tt = self.step(&mut t, 20, 120);
            self.save(&mut ob, tt);
        }
        if plan.discount_percent > 0 {
            let tt = self.step(&mut t, 60, 600);
            let d = ob.subtotal() * plan.discount_percent / 100;
            ob.discount = d;
            ob.sessions[0].discounts.push(Discount {
                id: Some(plan.discount_percent),
                code: Some(plan.discount_percent),
                name: Some(format!("Скидка {}%", plan.discount_percent)),
                amount: Some(rk7::Kopecks(-d)),
                ..Default::default()
            });
            let detail = format!("Скидка {}%", plan.discount_percent);
            truth.discounts.push(self.op(&ob, tt, d, &waiter, detail));
            self.emit(
                &mut ob,
                Situation::OrderCalculated,
                "Order recalc",
                tt,
                Vec::new(),
                false,
            );
        }
        let tt = self.step(&mut t, 300, 1500);
        self.prebill(&mut ob, tt);
        if plan.cancelled_prebill {
            let tt = self.step(&mut t, 60, 300);
            let manager_p = self.manager.clone();
            let pc = ob
                .last_session()
                .print_checks
                .last_mut()
                .expect("a pre-bill was printed");
            pc.deleted = Some(true);
            pc.state = Some(LineState::Deleted);
            pc.reason = Some(Ref {
                id: Some(3),
                code: Some(3),
                name: Some("Гость передумал".into()),
                ..Default::default()
            });
            pc.delete_manager = Some(manager_p);
            let detail = format!("bill {}", pc.check_num.unwrap_or(0));
            let amount = pc.amount.map_or(0, |a| a.0);
            truth
                .cancelled_prebills
                .push(self.op(&ob, tt, amount, &manager, detail));
            self.emit(
                &mut ob,
                Situation::OrderChanged,
                "Order Changed",
                tt,
                Vec::new(),
                false,
            );
            let tt = self.step(&mut t, 60, 300);
            self.prebill(&mut ob, tt);
        }
        self.step(&mut t, 120, 900);
        let first = if plan.card { CARD } else { CASH };
        self.pay(&mut ob, &mut t, first);
        if plan.deleted_receipt {
            let tt = self.step(&mut t, 60, 300);
            let manager_p = self.manager.clone();
            let s = ob.last_session();
            for p in &mut s.pays {
                p.deleted = Some(true);
            }
            let pc = s.print_checks.last_mut().expect("a receipt was printed");
            pc.deleted = Some(true);
            pc.state = Some(LineState::Deleted);
            pc.reason = Some(Ref {
                id: Some(1),
                code: Some(1),
                name: Some("Неверный способ оплаты".into()),
                ..Default::default()
            });
            pc.delete_manager = Some(manager_p);
            for p in &mut pc.pays {
                p.deleted = Some(true);
            }
            let detail = format!("receipt {}", pc.check_num.unwrap_or(0));
            let amount = pc.amount.map_or(0, |a| a.0);
            ob.set_line_state(LineState::Fixed);
            truth
                .deleted_receipts
                .push(self.op(&ob, tt, amount, &manager, detail));
            self.emit(
                &mut ob,
                Situation::ReceiptDeleted,
                "Delete Receipt",
                tt,
                Vec::new(),
                false,
            );
            self.step(&mut t, 60, 300);
            let other = if first == CARD { CASH } else { CARD };
            self.pay(&mut ob, &mut t, other);
        }
        let tt = self.step(&mut t, 30, 300);
        self.close(&mut ob, tt);
        // A dish of an order without a discount, so the refund is its price.
        if let Some(d) = ob.sessions[0]
            .dishes
            .iter()
            .find(|d| d.quantity.is_some_and(|q| q.0 == 1000) && ob.discount == 0)
        {
            let src = SourceOrder {
                visit: Some(ob.visit),
                order_ident: Some(ob.ident),
                guid: Some(ob.guid.clone()),
                ..Default::default()
            };
            self.closed_today.push((src, d.clone(), st));
        }
        self.finish_order(ob, "closed", false, truth);
    }

    /// A banquet: hundreds of lines over two rounds, paid by card.
    fn banquet(&mut self, st: usize, t0: NaiveDateTime, truth: &mut Truth) {
        let mut ob = self.open_order(st, t0);
        ob.banquet = true;
        ob.phone = None;
        let mut t = t0;
        let s = self.new_session(&ob, t);
        ob.sessions.push(s);
        self.emit(
            &mut ob,
            Situation::NewOrder,
            "New Order",
            t,
            Vec::new(),
            false,
        );
        ob.sessions.clear();
        for _ in 0..2 {
            let n = self.rng.random_range(150..=250);
            let tt = self.step(&mut t, 300, 900);
            self.add_round(&mut ob, tt, n);
            let tt = self.step(&mut t, 60, 300);
            self.save(&mut ob, tt);
            self.step(&mut t, 1800, 3600);
        }
        let tt = self.step(&mut t, 300, 900);
        self.prebill(&mut ob, tt);
        self.step(&mut t, 300, 900);
        self.pay(&mut ob, &mut t, CARD);
        let tt = self.step(&mut t, 60, 300);
        self.close(&mut ob, tt);
        let total = ob.total();
        let lines = ob.sessions.iter().map(|s| s.dishes.len()).sum::<usize>();
        let who = self.stations[st].waiter.name.clone().unwrap_or_default();
        truth
            .banquets
            .push(self.op(&ob, t0, total, &who, format!("{lines} lines")));
        self.finish_order(ob, "closed", true, truth);
    }

    /// A return (purchase) order of one portion of a dish sold today.
    fn return_order(
        &mut self,
        st: usize,
        t0: NaiveDateTime,
        src: SourceOrder,
        dish: Dish,
        truth: &mut Truth,
    ) {
        let mut ob = self.open_order(st, t0);
        ob.phone = None;
        ob.source = Some(src.clone());
        let mut t = t0;
        let s = self.new_session(&ob, t);
        ob.sessions.push(s);
        self.emit(
            &mut ob,
            Situation::NewOrder,
            "New Order",
            t,
            Vec::new(),
            false,
        );
        let price = dish.price.map_or(0, |p| p.0);
        let uni = ob.next_uni;
        ob.next_uni += 1;
        let line = Dish {
            uni: Some(uni),
            line_guid: Some(self.guid()),
            state: Some(LineState::Open),
            amount: Some(rk7::Kopecks(-price)),
            quantity: Some(rk7::Thousandths(-1000)),
            new: Some(true),
            source_guid_string: dish.line_guid.as_ref().map(|g| g.canonical()),
            kds_state: None,
            voids: Vec::new(),
            discounts: Vec::new(),
            ..dish.clone()
        };
        let change = vec![ChangeLogDish {
            id: line.id,
            code: line.code,
            name: line.name.clone(),
            uni: line.uni,
            old_value: Some(rk7::Thousandths(0)),
            new_value: line.quantity,
            new: Some(true),
            ..Default::default()
        }];
        ob.last_session().dishes.push(line);
        let tt = self.step(&mut t, 30, 120);
        self.emit(
            &mut ob,
            Situation::OrderChanged,
            "Order Changed",
            tt,
            change,
            false,
        );
        let tt = self.step(&mut t, 20, 90);
        self.save(&mut ob, tt);
        self.step(&mut t, 20, 90);
        self.pay(&mut ob, &mut t, CASH);
        let tt = self.step(&mut t, 20, 120);
        self.close(&mut ob, tt);
        let who = self.manager.name.clone().unwrap_or_default();
        let detail = format!(
            "{} from order {}",
            dish.name.clone().unwrap_or_default(),
            src.guid.as_ref().map(|g| g.canonical()).unwrap_or_default()
        );
        truth.returns.push(self.op(&ob, t0, -price, &who, detail));
        self.finish_order(ob, "return", false, truth);
    }

    /// Records the final state of an order in the truth, from the
    /// generator's own bookkeeping.
    fn finish_order(&mut self, ob: OrderB, status: &'static str, banquet: bool, truth: &mut Truth) {
        let total = if ob.deleted { 0 } else { ob.total() };
        let mut receipts = 0u32;
        let mut paid = 0i64;
        let mut deleted_receipts = 0u32;
        let mut by_hour: BTreeMap<u32, i64> = BTreeMap::new();
        let mut pays: BTreeMap<String, i64> = BTreeMap::new();
        let mut dish_qty: BTreeMap<String, i64> = BTreeMap::new();
        let mut dish_count = 0usize;
        let mut qty_sum = 0i64;
        let mut voids = 0u32;
        for s in &ob.sessions {
            for pc in s.print_checks.iter().filter(|p| p.bill != Some(true)) {
                if pc.deleted == Some(true) {
                    deleted_receipts += 1;
                    continue;
                }
                receipts += 1;
                let a = pc.amount.map_or(0, |a| a.0);
                paid += a;
                let hour = pc.print_time.map_or(0, |t| t.value().hour());
                *by_hour.entry(hour).or_default() += a;
            }
            for p in s.pays.iter().filter(|p| p.deleted != Some(true)) {
                *pays.entry(p.name.clone().unwrap_or_default()).or_default() +=
                    p.amount.map_or(0, |a| a.0);
            }
            for d in &s.dishes {
                voids += d.voids.len() as u32;
                let q = d.quantity.map_or(0, |q| q.0);
                if q != 0 {
                    dish_count += 1;
                    qty_sum += q;
                    *dish_qty
                        .entry(d.name.clone().unwrap_or_default())
                        .or_default() += q;
                }
            }
        }
        let date = ldt(self.shift_date).to_string();
        let shift = truth.shift_mut(&self.rest_code, self.shift_num, &date);
        shift.revenue += paid;
        shift.receipts += receipts;
        shift.deleted_receipts += deleted_receipts;
        shift.voids += voids;
        shift.discounts += ob.discount;
        if status == "closed" {
            shift.closed_orders += 1;
        }
        for (k, v) in &pays {
            *shift.payments_by_currency.entry(k.clone()).or_default() += v;
        }
        for (k, v) in by_hour {
            *shift.sales_by_hour.entry(k).or_default() += v;
        }
        if !ob.deleted {
            for (k, v) in dish_qty {
                *shift.dish_qty.entry(k).or_default() += v;
            }
        }
        truth.orders.insert(
            ob.guid.canonical(),
            OrderTruth {
                rest_code: self.rest_code.clone(),
                server_name: self.server_name.clone(),
                station_code: self.stations[ob.station].code,
                shift_num: self.shift_num,
                visit: ob.visit,
                order_ident: ob.ident,
                status,
                total,
                paid,
                discount: ob.discount,
                dish_count,
                dish_qty: qty_sum,
                phone: ob.phone.clone(),
                kds_steps: ob.kds_steps.clone(),
                receipts,
                payments_by_currency: pays,
                banquet,
                opened_at: ldt(ob.open_time).to_string(),
                last_event_at: ldt(ob.last_at).to_string(),
                events: ob.events,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times_stay_in_their_day(s: &Scenario) {
        let g = generate(s);
        for stream in &g.servers {
            let mut last = None;
            for e in &stream.events {
                let t = e.event.date_time.expect("DateTime").value();
                let day = e.event.shift_date.expect("ShiftDate").value().date();
                assert_eq!(t.date(), day, "{}", String::from_utf8_lossy(&e.xml));
                if let Some(prev) = last {
                    assert!(t >= prev);
                }
                last = Some(t);
            }
        }
    }

    #[test]
    fn many_stations_servers_and_orders_stay_inside_the_day() {
        times_stay_in_their_day(&Scenario {
            stations: 99,
            orders: 1,
            ..Scenario::default()
        });
        times_stay_in_their_day(&Scenario {
            cash_servers: 50,
            stations: 1,
            orders: 1,
            ..Scenario::default()
        });
        times_stay_in_their_day(&Scenario {
            stations: 1,
            orders: 400,
            days: 3,
            ..Scenario::default()
        });
    }

    #[test]
    fn the_first_orders_of_a_day_carry_one_notable_operation_each() {
        let s = Scenario::default();
        let mut g = ServerGen::new(&s, 0, 0, "199990100");
        let p: Vec<Plan> = (0..7).map(|n| g.plan(n)).collect();
        assert!(p[0].card && p[0].kds && p[0].discount_percent == 0);
        assert!(p[1].deleted_receipt && !p[1].card);
        assert!(p[2].cancelled_prebill);
        assert!(p[3].void_after_print && p[3].kds);
        assert!(p[4].unsaved_deletion);
        assert!(p[5].delete_whole_order);
        assert_eq!(p[6].discount_percent, 10);
    }

    #[test]
    fn guids_look_like_windows_ones_and_differ() {
        let s = Scenario::default();
        let mut g = ServerGen::new(&s, 0, 0, "199990100");
        let a = g.guid();
        let b = g.guid();
        assert_ne!(a, b);
        let text = a.as_str();
        assert_eq!(text.len(), 38);
        assert!(text.starts_with('{') && text.ends_with('}'));
        assert_eq!(&text[15..16], "4", "version 4: {text}");
        assert!(
            matches!(&text[20..21], "8" | "9" | "A" | "B"),
            "variant: {text}"
        );
        assert_eq!(text, text.to_uppercase());
    }

    #[test]
    fn one_order_a_station_still_closes_every_order_and_returns_one_dish() {
        let g = generate(&Scenario {
            stations: 1,
            orders: 1,
            ..Scenario::default()
        });
        // A card-paid order, then the evening's return of one of its dishes.
        assert_eq!(g.truth.orders.len(), 2);
        assert_eq!(g.truth.returns.len(), 1);
        let statuses: Vec<_> = g.truth.orders.values().map(|o| o.status).collect();
        assert!(statuses.contains(&"closed") && statuses.contains(&"return"));
        let shift = &g.truth.shifts[0];
        let orders: i64 = g.truth.orders.values().map(|o| o.paid).sum();
        assert_eq!(shift.revenue, orders);
        assert_eq!(shift.receipts, 2);
    }

    #[test]
    fn cash_servers_of_a_restaurant_share_the_shift_but_not_ids() {
        let g = generate(&Scenario {
            cash_servers: 3,
            stations: 2,
            orders: 2,
            ..Scenario::default()
        });
        let mut stations = std::collections::BTreeSet::new();
        let mut servers = std::collections::BTreeSet::new();
        for s in &g.servers {
            assert_eq!(s.rest_code, "199990100");
            for e in &s.events {
                assert_eq!(e.event.shift_num, Some(1));
                if let Some(st) = &e.event.station
                    && e.event.order.is_none()
                {
                    stations.insert((st.id, st.code));
                }
                servers.insert(e.event.server.as_ref().and_then(|s| s.id));
            }
        }
        assert_eq!(stations.len(), 6);
        assert_eq!(servers.len(), 3);
        assert_eq!(g.truth.shifts.len(), 1);
        let closed = g
            .truth
            .orders
            .values()
            .filter(|o| o.status == "closed")
            .count();
        assert_eq!(g.truth.shifts[0].closed_orders as usize, closed);
    }
}
