//! How a stored body is encoded: as received, or LZ4-compressed.
//!
//! r_keeper's XML compresses about four-fold, and every byte of a body is
//! written twice by SQLite (WAL, then the checkpoint) and synced once. LZ4
//! was measured against zstd and against storing raw (`cargo bench --bench
//! ingest -- floor`, docs/benchmarks.md): it costs microseconds per body on
//! one core, where zstd cost more CPU than the smaller write saved. The
//! column `events.codec` says how each row's body is stored, so rows written
//! before compression (or with it switched off) read back unchanged, and
//! the API always answers the bytes exactly as received.

use bytes::Bytes;

use crate::core::store::StoreError;

/// The encoding of a stored body (the `events.codec` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// The bytes as received.
    None,
    /// LZ4 block with the original size in front (`lz4_flex`'s
    /// `compress_prepend_size`).
    #[default]
    Lz4,
}

impl Codec {
    /// The value stored in `events.codec`.
    pub fn id(self) -> i64 {
        match self {
            Codec::None => 0,
            Codec::Lz4 => 1,
        }
    }

    /// The name used in the configuration (`[log] compression`).
    pub fn parse(name: &str) -> Option<Codec> {
        match name {
            "none" => Some(Codec::None),
            "lz4" => Some(Codec::Lz4),
            _ => None,
        }
    }

    /// The stored form of `body`.
    pub fn encode(self, body: &[u8]) -> Vec<u8> {
        match self {
            Codec::None => body.to_vec(),
            Codec::Lz4 => lz4_flex::compress_prepend_size(body),
        }
    }
}

/// The bytes as received, from a stored body and its `codec` column.
pub fn decode(codec: i64, stored: Vec<u8>) -> Result<Bytes, StoreError> {
    match codec {
        0 => Ok(Bytes::from(stored)),
        1 => lz4_flex::decompress_size_prepended(&stored)
            .map(Bytes::from)
            .map_err(|e| StoreError::Corrupt(format!("an LZ4 body does not decompress: {e}"))),
        other => Err(StoreError::Corrupt(format!(
            "unknown body codec {other} (written by a newer tillgate?)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_gives_back_the_bytes_exactly() {
        let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><a b=\"Щи\">\r\n</a>".repeat(20);
        for codec in [Codec::None, Codec::Lz4] {
            let stored = codec.encode(body.as_bytes());
            assert_eq!(decode(codec.id(), stored).unwrap(), body.as_bytes());
        }
        assert!(Codec::Lz4.encode(body.as_bytes()).len() < body.len() / 3);
        assert!(
            decode(1, Vec::new())
                .unwrap_err()
                .to_string()
                .contains("LZ4")
        );
        assert!(decode(1, vec![200, 0, 0, 0, 1, 2]).is_err());
        assert!(
            decode(7, vec![1])
                .unwrap_err()
                .to_string()
                .contains("codec 7")
        );
    }

    #[test]
    fn configuration_names() {
        assert_eq!(Codec::parse("lz4"), Some(Codec::Lz4));
        assert_eq!(Codec::parse("none"), Some(Codec::None));
        assert_eq!(Codec::parse("zstd"), None);
    }
}
