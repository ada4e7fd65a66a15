//! tillgate's integration tests: the real server through `spawn_app()`.

mod crash;
mod harness;
mod ingest;
mod orders;
mod alerts;
mod fake_telegram;
