//! tillgate's integration tests: the real server through `spawn_app()`.

mod harness;
mod ingest;
mod loyalty;
mod loyalty_offline;
mod loyalty_concurrency;
mod loyalty_cli;
