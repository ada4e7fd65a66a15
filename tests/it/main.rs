//! tillgate's integration tests: the real server through `spawn_app()`.

mod crash;
mod fake_smsru;
mod harness;
mod ingest;
mod orders;
mod relay;
mod relay_receiver;
mod simulate;
mod sms;
