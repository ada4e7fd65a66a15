//! Standard Webhooks signatures: `webhook-signature: v1,<base64>` where the
//! base64 is HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`.
//!
//! The receiver recomputes it over the exact bytes it got, so the signature
//! is made over the body as sent, after any format conversion. The key
//! ([`SigningKey`]) is parsed from the destination's `whsec_` secret.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;

use super::destination::DestinationError;

/// A Standard Webhooks signing key. Debug never shows it.
#[derive(Clone)]
pub struct SigningKey(std::sync::Arc<SecretBox<Vec<u8>>>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(…)")
    }
}

impl SigningKey {
    pub fn parse(text: &str) -> Result<SigningKey, DestinationError> {
        let b64 = text
            .strip_prefix("whsec_")
            .ok_or(DestinationError::BadSecret(
                "it does not start with `whsec_`",
            ))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| DestinationError::BadSecret("the part after `whsec_` is not base64"))?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(DestinationError::BadSecret(
                "the key is not 24 to 64 bytes long",
            ));
        }
        Ok(SigningKey(std::sync::Arc::new(SecretBox::new(Box::new(
            bytes,
        )))))
    }

    pub fn bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

/// The `webhook-signature` header value.
pub fn signature(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let sig = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(sig)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks specification's reference
    /// libraries: a known secret, id, timestamp and body give this value.
    #[test]
    fn matches_the_reference_example() {
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let s = signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(s, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
