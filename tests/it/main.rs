//! tillgate's integration tests: the real server through `spawn_app()`.

mod harness;
mod ingest;
mod loyalty;
mod loyalty_cli;
mod loyalty_concurrency;
mod loyalty_offline;
