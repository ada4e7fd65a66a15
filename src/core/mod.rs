//! The core: the machinery every feature stands on, written once.
//!
//! Dependencies point one way: `core` ← features ← `app`. Nothing here
//! names a feature. A feature that needs a retry schedule, a clock, an
//! outbox loop or a group commit takes it from here; if it is missing, it
//! is added here, once.
//!
//! * [`store`]: the storage handle (SQLite or PostgreSQL) and its errors;
//! * [`migrate`]: schema files in `migrations/`, checksummed;
//! * [`log`]: the event log, the spine (append, read, cursors, retention);
//! * [`book`]: the order book, the pure fold of the log into orders,
//!   stations and shifts that several features need;
//! * [`consumer`]: a feature reading the log with a durable cursor;
//! * [`outbox`]: the worker loop every delivery runs on, outbox states;
//! * [`backoff`], [`clock`], [`group_commit`], [`limiter`]: the shared
//!   primitives;
//! * [`phone`], [`money`]: types and formats parsed or shown at the edge;
//! * [`password`]: Argon2 hashes, checked under one bound for everyone;
//! * [`bus`]: notices between features;
//! * [`config`], [`feature`]: the settings and the shape of a feature;
//! * [`client_addr`]: the client behind a trusted proxy;
//! * [`operator_url`]: where subcommands reach the running server;
//! * [`settings`]: small settings changed at run time, versioned so every
//!   instance on one database sees a change;
//! * [`api_error`], [`telemetry`], [`runtimes`]: the HTTP error body,
//!   logs and metrics, the background runtimes.

pub mod api_error;
pub mod backoff;
pub mod book;
pub mod bus;
pub mod client_addr;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod feature;
pub mod group_commit;
pub mod lease;
pub mod limiter;
pub mod log;
pub mod migrate;
pub mod money;
pub mod operator_url;
pub mod outbox;
pub mod password;
pub mod phone;
pub mod runtimes;
pub mod settings;
pub mod store;
pub mod telemetry;
