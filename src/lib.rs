//! tillgate: a hub between r_keeper 7 cash servers and everything around
//! them. Cash servers POST HTTP Order Notify events to tillgate; tillgate
//! stores them durably in an event log, and every feature (order state,
//! relay, alerts, ...) is a consumer of that log.
//!
//! Dependencies point one way: [`core`] (storage, the log, the consumer
//! runner, the outbox worker, clock, backoff, group commit, errors) ←
//! features (one folder each) ← [`app`], the one module that lists them.
//! [`run`] starts the whole server on a listener the caller owns, so tests
//! and benchmarks run the real thing on port 0.

pub mod core;

pub mod alerts;
pub mod backoffice;
pub mod cashservers;
pub mod ingest;
pub mod loyalty;
pub mod orders;
pub mod relay;
pub mod sms;

pub mod doctor;

pub mod app;
pub mod console;

pub use app::run;
