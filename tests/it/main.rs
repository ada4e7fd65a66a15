//! tillgate's integration tests: the real server through `spawn_app()`.

mod alerts;
mod architecture;
mod crash;
mod docs;
mod fake_smsru;
mod fake_telegram;
mod harness;
mod ingest;
mod loyalty;
mod loyalty_cli;
mod loyalty_concurrency;
mod loyalty_offline;
mod metrics;
mod orders;
mod packaging;
mod relay;
mod relay_receiver;
mod simulate;
mod sms;
mod upgrade;
mod windows;
