//! How the client trusts a cash server's certificate, which is usually
//! self-signed (often RSA-1024): by the public roots, by its SHA-256
//! fingerprint (pinning), or not at all, and that last only when asked for
//! by name ([`Trust::Insecure`]), never as a fallback.
//!
//! Pinning compares the SHA-256 of the end-entity certificate (DER) with the
//! configured one and still checks the handshake's signature with the
//! certificate's key, so a man in the middle needs the server's private key.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use super::error::Error;

/// A SHA-256 certificate fingerprint.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Reads `AB:CD:...` or `abcd...` (64 hex digits, colons, spaces and a
    /// leading `sha256:` / `SHA256:` allowed), as browsers and `openssl x509
    /// -fingerprint -sha256` print it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let t = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("SHA256:"))
            .or_else(|| t.strip_prefix("sha256 Fingerprint="))
            .or_else(|| t.strip_prefix("SHA256 Fingerprint="))
            .unwrap_or(t);
        let hex: Vec<u8> = t
            .bytes()
            .filter(|b| !matches!(b, b':' | b' ' | b'-'))
            .collect();
        if hex.len() != 64 {
            return Err(format!(
                "a SHA-256 fingerprint has 64 hex digits, this has {}",
                hex.len()
            ));
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).map_err(|_| "not hex".to_string())?;
            out[i] = u8::from_str_radix(s, 16).map_err(|_| format!("{s:?} is not hex"))?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Fingerprint {
    /// `AB:CD:...`, the way `openssl` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Which certificates the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Trust {
    /// Certificates signed by the public roots (the default of `reqwest`).
    #[default]
    PublicRoots,
    /// Exactly the certificate with this SHA-256 fingerprint.
    Pinned(Fingerprint),
    /// Any certificate: no protection against a man in the middle. Only
    /// when the operator asked for it explicitly.
    Insecure,
}

/// The fingerprint the server presented did not match the pin.
#[derive(Debug)]
struct PinMismatch {
    presented: Fingerprint,
    pinned: Fingerprint,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the cash server's certificate has SHA-256 fingerprint {}, which is not the pinned {}",
            self.presented, self.pinned
        )
    }
}

impl std::error::Error for PinMismatch {}

/// The last pin mismatch a client's verifier saw: the TLS stack buries
/// the verifier's error under layers that do not all expose their source,
/// so the verifier also leaves it here for the client to report.
pub(super) type PinSlot = Arc<std::sync::Mutex<Option<String>>>;

#[derive(Debug)]
struct Verifier {
    pin: Option<Fingerprint>,
    provider: Arc<CryptoProvider>,
    slot: PinSlot,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.pin {
            None => Ok(ServerCertVerified::assertion()),
            Some(pinned) => {
                let presented = Fingerprint::of(end_entity);
                if presented == pinned {
                    Ok(ServerCertVerified::assertion())
                } else {
                    let m = PinMismatch { presented, pinned }.to_string();
                    if let Ok(mut s) = self.slot.lock() {
                        *s = Some(m);
                    }
                    Err(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                            PinMismatch { presented, pinned },
                        ))),
                    ))
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A `reqwest::Client` that trusts as `trust` says, with `connect_timeout`
/// for the TCP and TLS set-up (a server that is down answers at once; one
/// that drops packets would otherwise hold a caller for minutes). It does
/// not follow redirects (see [`super::Client`]).
pub fn http_client(trust: Trust, connect_timeout: Duration) -> Result<reqwest::Client, Error> {
    Ok(pinned_client(trust, connect_timeout)?.0)
}

/// [`http_client`] with the slot its verifier reports a pin mismatch in.
pub(super) fn pinned_client(
    trust: Trust,
    connect_timeout: Duration,
) -> Result<(reqwest::Client, PinSlot), Error> {
    let slot = PinSlot::default();
    let builder = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none());
    let builder = match trust {
        Trust::PublicRoots => builder,
        Trust::Pinned(pin) => builder.tls_backend_preconfigured(config(Some(pin), &slot)?),
        Trust::Insecure => builder.tls_backend_preconfigured(config(None, &slot)?),
    };
    let client = builder.build().map_err(|e| Error::Transport(Box::new(e)))?;
    Ok((client, slot))
}

fn config(pin: Option<Fingerprint>, slot: &PinSlot) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(Verifier {
        pin,
        provider: provider.clone(),
        slot: slot.clone(),
    });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Transport(Box::new(e)))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The whole chain of an error as one line (`reqwest` shows only the top,
/// "error sending request", which says nothing to an operator).
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = err.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_the_usual_spellings() {
        let colon = "AB:".repeat(31) + "AB";
        let f = Fingerprint::parse(&colon).unwrap();
        assert_eq!(f.0, [0xAB; 32]);
        assert_eq!(f.to_string(), colon);
        assert_eq!(Fingerprint::parse(&"ab".repeat(32)).unwrap(), f);
        assert_eq!(
            Fingerprint::parse(&format!("SHA256 Fingerprint={colon}")).unwrap(),
            f
        );
        assert!(Fingerprint::parse("AB:CD").unwrap_err().contains("64 hex"));
        assert!(
            Fingerprint::parse(&"zz".repeat(32))
                .unwrap_err()
                .contains("not hex")
        );
    }
}
