//! The load benchmarks, part of the `tillgate` binary but not of the server
//! library: `tillgate bench` (ingest), `tillgate relay bench` and
//! `tillgate loyalty bench`, `tillgate backoffice bench`. Each starts the real server in-process on a
//! scratch data directory and measures it against a ceiling taken in the
//! same run.

pub mod backoffice;
pub mod floor;
pub mod ingest;
pub mod loyalty;
pub mod relay;
pub mod rss;
