//! Integration tests of the `rk7` crate: one binary, one file per concern.

mod broken;
mod quirks;
mod regressions;
mod roundtrip;
mod seed;
mod strategies;
mod writer;
// The XML-interface client; run with `cargo test -p rk7 --features client`.
#[cfg(feature = "client")]
mod xmlapi;

/// The bytes of a fixture in `tests/fixtures`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parses a date-time literal used in assertions.
pub fn dt(s: &str) -> rk7::LocalDateTime {
    rk7::LocalDateTime::parse(s).expect("test date-time")
}

/// Parses a GUID literal used in assertions.
pub fn guid(s: &str) -> rk7::Guid {
    rk7::Guid::parse(s).expect("test guid")
}
