//! The `[rk7]` settings: the cash servers tillgate may talk back to
//! (`[[rk7.cash_servers]]`), tillgate's own ingest URL as cash servers
//! should reach it, and the reconciliation period.
//!
//! A cash server's password is a secret: kept wrapped, never in `Debug`,
//! logs or API answers. TLS is never skipped silently: a cash server's
//! usually self-signed certificate is pinned by its SHA-256 fingerprint, or
//! accepted unchecked only with `insecure_tls = true` written out.

use std::time::Duration;

use rk7::xmlapi::{Fingerprint, Trust};
use secrecy::SecretString;
use serde::Deserialize;

use crate::core::config::ConfigError;

/// The `[rk7]` section of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSection {
    /// tillgate's ingest URL as the cash servers reach it, e.g.
    /// `http://10.0.0.2:11130/rkevent`: what `repoint` subscribes and what
    /// `doctor` looks for in a cash server's subscriptions.
    pub ingest_url: Option<String>,
    /// Compare every cash server's orders with tillgate's state this often
    /// and backfill what drifted (minutes; absent or 0: off).
    pub reconcile_every_mins: Option<u64>,
    /// Backfill by itself when a gap in a cash server's events is recorded
    /// (default true).
    pub backfill_on_gap: Option<bool>,
    /// Time limit of one XML-interface request in seconds (default 30; the
    /// interface can hang about a minute on some commands).
    pub timeout_secs: Option<u64>,
    /// The cash servers.
    #[serde(default)]
    pub cash_servers: Vec<CashServerFile>,
}

/// One `[[rk7.cash_servers]]`.
#[derive(Deserialize, Clone, Default, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CashServerFile {
    /// A name of your choice (letters, digits, `-`, `_`): used by the
    /// commands and the API.
    pub name: String,
    /// `https://host:port`: the cash server's "HTTP Data Port".
    pub url: String,
    /// An employee with the "HTTP Access" right.
    pub user: String,
    /// Their password (a secret).
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// The restaurant code; learned from the cash server when absent.
    pub rest_code: Option<String>,
    /// SHA-256 fingerprint of the cash server's certificate (`AB:CD:...`),
    /// as `tillgate doctor` or `openssl x509 -fingerprint -sha256` shows it.
    pub tls_fingerprint: Option<String>,
    /// Accept any certificate (no protection against a man in the middle).
    /// Only when written out; prefer `tls_fingerprint`.
    pub insecure_tls: Option<bool>,
}

impl std::fmt::Debug for CashServerFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CashServerFile")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

/// A validated cash server.
#[derive(Clone, Debug)]
pub struct CashServer {
    pub name: String,
    pub url: String,
    pub user: String,
    pub password: SecretString,
    pub rest_code: Option<String>,
    pub trust: Trust,
}

impl CashServer {
    /// How its TLS is checked, in words.
    pub fn tls_words(&self) -> String {
        match self.trust {
            Trust::PublicRoots => "verified against the public roots".into(),
            Trust::Pinned(f) => format!("pinned to SHA-256 {f}"),
            Trust::Insecure => "NOT verified (insecure_tls = true)".into(),
        }
    }
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub ingest_url: Option<String>,
    pub reconcile_every: Option<Duration>,
    pub backfill_on_gap: bool,
    pub timeout: Duration,
    pub cash_servers: Vec<CashServer>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ingest_url: None,
            reconcile_every: None,
            backfill_on_gap: true,
            timeout: Duration::from_secs(30),
            cash_servers: Vec::new(),
        }
    }
}

/// Checks the section; errors name the setting.
pub fn validate(file: FileSection) -> Result<Settings, ConfigError> {
    let ingest_url = match file.ingest_url {
        Some(u) => {
            Some(check_ingest_url(&u).map_err(|p| ConfigError::invalid("rk7.ingest_url", p))?)
        }
        None => None,
    };
    let timeout = file.timeout_secs.unwrap_or(30);
    if timeout == 0 || timeout > 600 {
        return Err(ConfigError::invalid(
            "rk7.timeout_secs",
            "must be 1..=600 seconds",
        ));
    }
    let mut cash_servers: Vec<CashServer> = Vec::new();
    for (i, c) in file.cash_servers.into_iter().enumerate() {
        let at = format!("rk7.cash_servers[{i}]");
        let s = validate_cash_server(c)
            .map_err(|(field, p)| ConfigError::invalid(&format!("{at}.{field}"), p))?;
        if cash_servers.iter().any(|o| o.name == s.name) {
            return Err(ConfigError::invalid(
                &format!("{at}.name"),
                format!("{:?} is used twice", s.name),
            ));
        }
        cash_servers.push(s);
    }
    Ok(Settings {
        ingest_url,
        reconcile_every: file
            .reconcile_every_mins
            .filter(|m| *m > 0)
            .map(|m| Duration::from_secs(m * 60)),
        backfill_on_gap: file.backfill_on_gap.unwrap_or(true),
        timeout: Duration::from_secs(timeout),
        cash_servers,
    })
}

/// tillgate's ingest URL: http(s) with a host.
pub fn check_ingest_url(u: &str) -> Result<String, String> {
    let parsed = url::Url::parse(u.trim())
        .map_err(|e| format!("{u:?} is not a URL ({e}); e.g. http://10.0.0.2:11130/rkevent"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("{u:?} must be http(s)://host:port/path"));
    }
    Ok(u.trim().to_string())
}

/// One cash server from the file or the API; the error is (field, problem).
pub fn validate_cash_server(c: CashServerFile) -> Result<CashServer, (&'static str, String)> {
    let name = c.name.trim().to_string();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_'))
    {
        return Err((
            "name",
            format!("{name:?}: 1 to 64 letters, digits, '-' or '_'"),
        ));
    }
    let url = url::Url::parse(c.url.trim()).map_err(|e| {
        (
            "url",
            format!("{:?} is not a URL ({e}); write https://host:port", c.url),
        )
    })?;
    if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
        return Err(("url", format!("{:?}: write https://host:port", c.url)));
    }
    if c.user.trim().is_empty() {
        return Err((
            "user",
            "an employee with the HTTP Access right is required".into(),
        ));
    }
    let Some(password) = c.password.filter(|p| !p.is_empty()) else {
        return Err(("password", "required (it is kept secret)".into()));
    };
    let insecure = c.insecure_tls.unwrap_or(false);
    let trust = match (c.tls_fingerprint.as_deref().map(str::trim), insecure) {
        (Some(_), true) => {
            return Err((
                "insecure_tls",
                "give either tls_fingerprint or insecure_tls = true, not both".into(),
            ));
        }
        (Some(f), false) => {
            Trust::Pinned(Fingerprint::parse(f).map_err(|p| ("tls_fingerprint", p))?)
        }
        (None, true) => Trust::Insecure,
        (None, false) => Trust::PublicRoots,
    };
    if let Some(r) = &c.rest_code
        && (r.is_empty() || !r.chars().all(|ch| ch.is_ascii_digit()))
    {
        return Err((
            "rest_code",
            format!("{r:?} is not a restaurant code (digits)"),
        ));
    }
    Ok(CashServer {
        name,
        url: url.as_str().trim_end_matches('/').to_string(),
        user: c.user.trim().to_string(),
        password: SecretString::from(password),
        rest_code: c.rest_code,
        trust,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> CashServerFile {
        CashServerFile {
            name: "hall".into(),
            url: "https://10.0.0.5:4545".into(),
            user: "admin".into(),
            password: Some("s3cret".into()),
            ..Default::default()
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: Vec<(CashServerFile, &str)> = vec![
            (
                CashServerFile {
                    name: "a b".into(),
                    ..ok()
                },
                "name",
            ),
            (
                CashServerFile {
                    url: "10.0.0.5:4545".into(),
                    ..ok()
                },
                "url",
            ),
            (
                CashServerFile {
                    url: "ftp://h/".into(),
                    ..ok()
                },
                "url",
            ),
            (
                CashServerFile {
                    user: " ".into(),
                    ..ok()
                },
                "user",
            ),
            (
                CashServerFile {
                    password: None,
                    ..ok()
                },
                "password",
            ),
            (
                CashServerFile {
                    tls_fingerprint: Some("AB:CD".into()),
                    ..ok()
                },
                "tls_fingerprint",
            ),
            (
                CashServerFile {
                    tls_fingerprint: Some("AB".repeat(32)),
                    insecure_tls: Some(true),
                    ..ok()
                },
                "insecure_tls",
            ),
            (
                CashServerFile {
                    rest_code: Some("x1".into()),
                    ..ok()
                },
                "rest_code",
            ),
        ];
        for (c, field) in cases {
            let (f, p) = validate_cash_server(c).unwrap_err();
            assert_eq!(f, field, "{p}");
        }
        let s = validate_cash_server(ok()).unwrap();
        assert_eq!(s.trust, Trust::PublicRoots);
        assert!(!format!("{s:?}{:?}", ok()).contains("s3cret"));
    }

    #[test]
    fn section_errors_name_the_setting() {
        let e = validate(FileSection {
            cash_servers: vec![ok(), ok()],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("rk7.cash_servers[1].name"), "{e}");
        let e = validate(FileSection {
            ingest_url: Some("rkevent".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("rk7.ingest_url"), "{e}");
        let s = validate(FileSection {
            reconcile_every_mins: Some(0),
            ..Default::default()
        })
        .unwrap();
        assert!(s.reconcile_every.is_none(), "0 is off");
    }
}
