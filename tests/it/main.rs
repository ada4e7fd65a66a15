//! tillgate's integration tests: the real server through `spawn_app()`.

mod harness;
mod fake_smsru;
mod ingest;
mod sms;
