//! The cash-server emulator: `tillgate simulate`.
//!
//! Every test, benchmark and demo of tillgate needs traffic that looks like
//! what r_keeper 7 cash servers really send through HTTP Order Notify. This
//! module produces it in two steps, kept apart so tests can use either:
//!
//! 1. [`generate`] plays N restaurants × cash servers × stations through one
//!    or more business days and returns the events of each cash server in the
//!    order it would send them ([`ServerStream`]), together with the ground
//!    truth ([`Truth`]) computed while generating: what each order's status
//!    and sums are, what each shift earned, which notable operations
//!    (deleted receipt, cancelled pre-bill, void, ...) happened. Generation is
//!    pure and deterministic: the same [`Scenario`] gives byte-identical XML.
//! 2. [`send`] delivers the streams like the r_keeper driver (`httpnotf.dll`)
//!    does: one strictly FIFO queue per destination, one request in flight,
//!    at most 256 queued, newer events dropped when the queue is full; or
//!    [`write_out`] writes them as files.
//!
//! `run_cli` glues both to the command line.

mod cashserver;
mod cli;
mod day;
mod out;
mod send;
mod truth;

pub use cashserver::{CashServer, CashServerOptions, Faults};
pub use cli::{SimulateArgs, run_cli};
pub use day::generate;
pub use out::write_out;
pub use send::{SendOptions, Summary, send};
pub use truth::{OpTruth, OrderTruth, ShiftTruth, Truth};

/// What to simulate. Build it with struct-update syntax over
/// `Scenario::default()` so new fields do not break callers.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Number of restaurants (distinct RestCodes), default 1. Restaurant `r`
    /// (0-based) gets RestCode `199990100 + r`.
    pub restaurants: u32,
    /// Cash servers per restaurant, default 1. Several cash servers of one
    /// restaurant share the RestCode and the common shift (its number and
    /// date), which is the case that breaks naive shift reports.
    pub cash_servers: u32,
    /// Cash stations per cash server, default 2.
    pub stations: u32,
    /// Ordinary orders per station per day, default 20. A station with at
    /// least seven orders (or seven across the stations of a cash server)
    /// shows every notable operation each day; see [`generate`].
    pub orders: u32,
    /// Business days, default 1. Each morning every cash server restarts
    /// (new stream guid, seqnumber from 1) and the events carry the next
    /// ShiftNum / ShiftDate: that is the only sign of the common shift close.
    pub days: u32,
    /// Seed of every random choice, default 1: same seed, same bytes.
    pub seed: u64,
    /// The first business day (ShiftDate of shift 1), default 2026-11-02.
    pub start: chrono::NaiveDate,
    /// Share (0..=100) of orders carrying a guest phone as the ExternalProp
    /// named `phone`, default 20; the SMS feature needs some, not all.
    pub phone_share_percent: u32,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            restaurants: 1,
            cash_servers: 1,
            stations: 2,
            orders: 20,
            days: 1,
            seed: 1,
            start: chrono::NaiveDate::from_ymd_opt(2026, 11, 2).expect("a valid date"),
            phone_share_percent: 20,
        }
    }
}

/// What [`generate`] produced: the events per cash server and the truth.
#[derive(Debug, Clone)]
pub struct Generated {
    /// One stream per cash server, restaurants first, in a fixed order.
    pub servers: Vec<ServerStream>,
    /// The right answers, computed while generating.
    pub truth: Truth,
}

impl Generated {
    /// Total number of events over all streams.
    pub fn event_count(&self) -> usize {
        self.servers.iter().map(|s| s.events.len()).sum()
    }
}

/// The events of one cash server, in the order it sends them (one driver
/// destination queue).
#[derive(Debug, Clone)]
pub struct ServerStream {
    /// The restaurant's RestCode.
    pub rest_code: String,
    /// The cash server's `name` (as in `<Server name>`), unique per
    /// restaurant; used for file names and log lines.
    pub server_name: String,
    /// Events of every simulated day, in sending order.
    pub events: Vec<SimEvent>,
}

/// One event: the typed model and the exact bytes sent (`rk7::write` of it).
#[derive(Debug, Clone)]
pub struct SimEvent {
    /// The typed event, so tests can compare without parsing.
    pub event: rk7::Event,
    /// The XML document the cash server posts.
    pub xml: Vec<u8>,
}

/// One event stream per sender: the emulator's cash servers, as many as
/// senders, each cut or extended to `per_sender` events. Every sender gets
/// its own restaurant, so no two senders share a (guid, seqnumber) and
/// nothing is a duplicate.
pub fn workload(senders: u32, per_sender: u64, seed: u64) -> Vec<Vec<Vec<u8>>> {
    workload_in(senders, senders, per_sender, seed)
}

/// [`workload`] over `restaurants` restaurants: the emulator's cash servers
/// (as many per restaurant as it takes to give every sender one) dealt
/// round-robin to the senders, each sender interleaving its servers'
/// events, so every stream stays in its own order. One restaurant makes
/// every sender a cash server of it; more restaurants than senders give a
/// sender several.
pub fn workload_in(
    senders: u32,
    restaurants: u32,
    per_sender: u64,
    seed: u64,
) -> Vec<Vec<Vec<u8>>> {
    let cash_servers = senders.div_ceil(restaurants.max(1)).max(1);
    let per_sender = per_sender as usize;
    let mut days = 1;
    // A default day of one cash server has a few hundred events; grow the
    // number of days until every stream is long enough.
    loop {
        let generated = generate(&Scenario {
            restaurants,
            cash_servers,
            days,
            seed,
            ..Scenario::default()
        });
        let mut queues: Vec<Vec<std::collections::VecDeque<Vec<u8>>>> =
            (0..senders).map(|_| Vec::new()).collect();
        for (i, s) in generated.servers.into_iter().enumerate() {
            queues[i % senders as usize].push(s.events.into_iter().map(|e| e.xml).collect());
        }
        let streams: Vec<Vec<Vec<u8>>> = queues
            .into_iter()
            .map(|mut qs| {
                let mut out = Vec::with_capacity(per_sender);
                while out.len() < per_sender && qs.iter().any(|q| !q.is_empty()) {
                    for q in qs.iter_mut() {
                        if let Some(b) = q.pop_front() {
                            out.push(b);
                        }
                    }
                }
                out.truncate(per_sender);
                out
            })
            .collect();
        let shortest = streams.iter().map(Vec::len).min().unwrap_or(0);
        if shortest >= per_sender || days >= 64 {
            return streams;
        }
        days = (days * 2).min(64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restaurants_spread_over_senders_keep_every_stream_in_order() {
        for (senders, restaurants) in [(4, 1), (4, 10)] {
            let streams = workload_in(senders, restaurants, 120, 3);
            assert_eq!(streams.len(), senders as usize);
            let mut codes = std::collections::HashSet::new();
            let mut last: std::collections::HashMap<String, u64> = Default::default();
            for s in &streams {
                assert_eq!(s.len(), 120);
                for b in s {
                    let ev = rk7::read(b).unwrap();
                    let guid = ev.guid.unwrap().canonical();
                    let seq = ev.seqnumber.unwrap();
                    if let Some(prev) = last.insert(guid, seq) {
                        assert!(seq > prev, "a stream went backwards");
                    }
                    codes.insert(ev.rest_code.unwrap().0);
                }
            }
            assert_eq!(codes.len(), restaurants as usize);
        }
    }
}
