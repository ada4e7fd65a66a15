//! Logging and metrics set-up.
//!
//! The Prometheus recorder is process-global (the `metrics` macros write to
//! one recorder), so it is installed once and shared by every server a
//! process runs; tests that start several servers see summed counters.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus handle, installing the recorder on first use.
pub fn metrics_handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("tillgate_commit_batch_size".into()),
                    &[
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Suffix("_seconds".into()),
                        &[
                            0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0,
                        ],
                    )
                })
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (e.g. by an embedding
            // program); metrics then go there and /metrics shows ours, empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The kind of a metric, for [`describe`].
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Gives a metric its HELP line and, unless it is labelled, a first value
/// of zero, so `/metrics` lists it from the start: `rate()` then sees the
/// first events, and an alert on an absent metric can tell "zero" from
/// "broken". Labelled metrics are registered by their owner for each label
/// value it knows (each consumer, each destination, each alert kind).
pub fn describe(kind: Kind, name: &'static str, help: &'static str, labelled: bool) {
    metrics_handle();
    match kind {
        Kind::Counter => {
            metrics::describe_counter!(name, help);
            if !labelled {
                metrics::counter!(name).increment(0);
            }
        }
        Kind::Gauge => {
            metrics::describe_gauge!(name, help);
            if !labelled {
                metrics::gauge!(name).increment(0.0);
            }
        }
        Kind::Histogram => {
            metrics::describe_histogram!(name, help);
            if !labelled {
                // Registering the handle is enough for the family (and its
                // zero count) to be rendered.
                let _ = metrics::histogram!(name);
            }
        }
    }
}

/// The core's own metrics (the log and its consumers).
pub fn describe_metrics() {
    use Kind::*;
    describe(
        Counter,
        "tillgate_events_accepted_total",
        "Events appended to the log (duplicates and quarantined bodies not counted).",
        false,
    );
    describe(
        Counter,
        "tillgate_events_duplicate_total",
        "Events received again with a (guid, seqnumber) already stored; answered 2xx, stored once.",
        false,
    );
    describe(
        Counter,
        "tillgate_events_quarantined_total",
        "Bodies that did not read as an event, kept verbatim in the quarantine.",
        false,
    );
    describe(
        Counter,
        "tillgate_quarantine_dropped_total",
        "Quarantined bodies dropped, oldest first, to keep the quarantine within [ingest] quarantine_max_bytes and quarantine_max_days.",
        false,
    );
    describe(
        Counter,
        "tillgate_event_gaps_total",
        "Seqnumber jumps within a cash server's stream: events r_keeper did not deliver.",
        false,
    );
    describe(
        Counter,
        "tillgate_events_key_reused_total",
        "Events stored under a (guid, seqnumber) an earlier event had with other bytes: kept, listed at /api/key-reuses.",
        false,
    );
    describe(
        Counter,
        "tillgate_events_pruned_total",
        "Events removed by log retention after every consumer passed them.",
        false,
    );
    describe(
        Counter,
        "tillgate_log_reads_total",
        "Log reads by consumers, by where they were served from (tail or database).",
        true,
    );
    describe(
        Gauge,
        "tillgate_log_head_offset",
        "Offset of the newest committed event.",
        false,
    );
    describe(
        Histogram,
        "tillgate_commit_batch_size",
        "Events and quarantined bodies per log group commit.",
        false,
    );
    describe(
        Histogram,
        "tillgate_commit_seconds",
        "Time of one log group commit, from taking the batch to the answer.",
        false,
    );
    describe(
        Gauge,
        "tillgate_consumer_lag_events",
        "Events committed to the log that a consumer has not applied yet.",
        true,
    );
    describe(
        Counter,
        "tillgate_lease_takeovers_total",
        "Leadership leases this instance took (PostgreSQL, several instances): a consumer or worker starting to run here.",
        false,
    );
    describe(
        Counter,
        "tillgate_lease_fenced_total",
        "Consumer writes refused because this instance no longer held the consumer's lease (a stale leader).",
        false,
    );
}

/// Sets up `tracing` output for the binary. `RUST_LOG` overrides the level;
/// `TILLGATE_LOG_FORMAT=json` writes one JSON object per line (for log
/// collectors). Colours only when standard error is a terminal: a log file
/// or a pipe full of escape codes is unreadable; and not on Windows, whose
/// classic console prints the escape codes instead of colours.
pub fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let json = std::env::var("TILLGATE_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().with_current_span(true).try_init()
    } else {
        builder
            .with_ansi(cfg!(unix) && std::io::stderr().is_terminal())
            .try_init()
    };
}
