//! tillgate's integration tests: the real server through `spawn_app()`.

mod harness;
mod ingest;
mod relay;
mod relay_receiver;
