//! tillgate's integration tests: the real server through `spawn_app()`.

mod fake_smsru;
mod harness;
mod ingest;
mod sms;
