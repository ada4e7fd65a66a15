//! Configuration: one typed `Config` built from defaults, an optional TOML
//! file, `TILLGATE_*` environment variables and command-line flags, in that
//! order of precedence (later wins).
//!
//! Everything is validated once, at start, so a misconfigured server refuses
//! to run with a message naming the setting instead of failing at 3 a.m.
//! when the first event arrives.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The port ProAlert's agent used: cash servers in the field already point here.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:11130";
pub const DEFAULT_DATA_DIR: &str = "./tillgate-data";
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("setting `{setting}`: {problem}")]
    Invalid { setting: String, problem: String },
}

impl ConfigError {
    pub fn invalid(setting: &str, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            setting: setting.to_string(),
            problem: problem.into(),
        }
    }
}

/// The file format. Every field is optional; defaults are filled in by
/// [`Config::from_file_and_overrides`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address the HTTP server listens on (ingest and operator API).
    pub listen: Option<String>,
    /// Directory for the embedded SQLite database and other local files.
    pub data_dir: Option<PathBuf>,
    /// `postgres://...` to store everything in PostgreSQL instead of SQLite.
    pub database_url: Option<SecretString>,
    /// Bearer token for `/api/*`. Required when `listen` is not loopback.
    pub api_token: Option<SecretString>,
    #[serde(default)]
    pub ingest: IngestFileConfig,
    #[serde(default)]
    pub log: LogFileConfig,
    #[serde(default)]
    pub relay: crate::relay::FileSection,
    #[serde(default)]
    pub alerts: crate::alerts::FileSection,
    #[serde(default)]
    pub sms: crate::sms::FileSection,
    #[serde(default)]
    pub loyalty: crate::loyalty::FileSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestFileConfig {
    /// Optional shared key cash servers must send as `?key=` on ingest paths.
    pub key: Option<SecretString>,
    /// Largest accepted body in bytes; larger bodies get 413.
    pub max_body_bytes: Option<usize>,
    /// Answer 400 to unreadable bodies instead of quarantining them with 2xx.
    /// Off by default: a 4xx would not unjam the cash server's FIFO queue.
    pub reject_bad_input: Option<bool>,
    /// Most events committed in one transaction (group commit).
    pub max_batch: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFileConfig {
    /// Events older than this many days may be pruned once every consumer
    /// has passed them. 0 keeps everything.
    pub retention_days: Option<u64>,
}

/// Overrides from the command line and environment (already merged by clap).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub api_token: Option<String>,
    pub ingest_key: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Storage {
    Sqlite { path: PathBuf },
    Postgres { url: SecretString },
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub storage: Storage,
    pub api_token: Option<SecretString>,
    pub ingest: IngestConfig,
    pub log: LogConfig,
    pub relay: crate::relay::Settings,
    pub alerts: crate::alerts::Settings,
    pub sms: crate::sms::Settings,
    pub loyalty: crate::loyalty::Settings,
}

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub key: Option<SecretString>,
    pub max_body_bytes: usize,
    pub reject_bad_input: bool,
    pub max_batch: usize,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub retention: Option<Duration>,
}

impl Config {
    /// Loads `path` (if any), applies overrides, validates.
    pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                parse_file(path, &text)?
            }
            None => FileConfig::default(),
        };
        Config::from_file_and_overrides(file, overrides)
    }

    pub fn from_file_and_overrides(file: FileConfig, o: Overrides) -> Result<Config, ConfigError> {
        let listen_text = o
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::invalid(
                "listen",
                format!("{listen_text:?} is not an address like 127.0.0.1:11130"),
            )
        })?;
        let data_dir = o
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        if data_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("data_dir", "must not be empty"));
        }
        let database_url = o
            .database_url
            .map(SecretString::from)
            .or(file.database_url)
            .filter(|u| !u.expose_secret().trim().is_empty());
        let storage = match database_url {
            None => Storage::Sqlite {
                path: data_dir.join("tillgate.db"),
            },
            Some(url) => {
                let u = url.expose_secret();
                if u.starts_with("postgres://") || u.starts_with("postgresql://") {
                    Storage::Postgres { url }
                } else if let Some(path) = u.strip_prefix("sqlite://") {
                    Storage::Sqlite {
                        path: PathBuf::from(path),
                    }
                } else {
                    return Err(ConfigError::invalid(
                        "database_url",
                        "must start with postgres:// (or sqlite://PATH); leave it empty for the embedded SQLite",
                    ));
                }
            }
        };
        let api_token = o
            .api_token
            .map(SecretString::from)
            .or(file.api_token)
            .filter(|t| !t.expose_secret().is_empty());
        if let Some(t) = &api_token
            && t.expose_secret().len() < 16
        {
            return Err(ConfigError::invalid(
                "api_token",
                "must be at least 16 characters",
            ));
        }
        if !listen.ip().is_loopback() && api_token.is_none() {
            return Err(ConfigError::invalid(
                "api_token",
                format!(
                    "required because `listen` ({listen}) is not a loopback address: the operator API would be open to the network"
                ),
            ));
        }
        let ingest_key = o
            .ingest_key
            .map(SecretString::from)
            .or(file.ingest.key)
            .filter(|k| !k.expose_secret().is_empty());
        let max_body_bytes = file.ingest.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if max_body_bytes < 1024 {
            return Err(ConfigError::invalid(
                "ingest.max_body_bytes",
                "must be at least 1024",
            ));
        }
        let max_batch = file.ingest.max_batch.unwrap_or(512);
        if !(1..=10_000).contains(&max_batch) {
            return Err(ConfigError::invalid(
                "ingest.max_batch",
                "must be between 1 and 10000",
            ));
        }
        let retention = match file.log.retention_days {
            None | Some(0) => None,
            Some(d) if d > 36_500 => {
                return Err(ConfigError::invalid(
                    "log.retention_days",
                    "must be at most 36500",
                ));
            }
            Some(d) => Some(Duration::from_secs(d * 86_400)),
        };
        Ok(Config {
            listen,
            data_dir,
            storage,
            api_token,
            ingest: IngestConfig {
                key: ingest_key,
                max_body_bytes,
                reject_bad_input: file.ingest.reject_bad_input.unwrap_or(false),
                max_batch,
            },
            log: LogConfig { retention },
            relay: crate::relay::validate(file.relay)?,
            alerts: crate::alerts::validate(file.alerts)?,
            sms: crate::sms::validate(file.sms)?,
            loyalty: crate::loyalty::validate(file.loyalty)?,
        })
    }

    /// A configuration for tests and benchmarks: loopback on port 0, data
    /// under `data_dir`.
    pub fn for_tests(data_dir: &Path) -> Config {
        Config::from_file_and_overrides(
            FileConfig::default(),
            Overrides {
                listen: Some("127.0.0.1:0".into()),
                data_dir: Some(data_dir.to_path_buf()),
                ..Overrides::default()
            },
        )
        .expect("test defaults are valid")
    }
}

pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Config, ConfigError> {
        let file = parse_file(Path::new("t.toml"), text)?;
        Config::from_file_and_overrides(file, Overrides::default())
    }

    #[test]
    fn defaults_are_loopback_and_sqlite() {
        let c = load_str("").unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(matches!(c.storage, Storage::Sqlite { .. }));
        assert_eq!(c.ingest.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert!(!c.ingest.reject_bad_input);
    }

    #[test]
    fn non_loopback_needs_token() {
        let e = load_str("listen = \"0.0.0.0:11130\"").unwrap_err();
        assert!(e.to_string().contains("api_token"), "{e}");
        let c = load_str("listen = \"0.0.0.0:11130\"\napi_token = \"0123456789abcdef0\"").unwrap();
        assert!(c.api_token.is_some());
    }

    #[test]
    fn broken_inputs_name_the_setting() {
        let e = load_str("listen = \"nowhere\"").unwrap_err();
        assert!(e.to_string().contains("`listen`"), "{e}");
        let e = load_str("database_url = \"mysql://x\"").unwrap_err();
        assert!(e.to_string().contains("database_url"), "{e}");
        let e = load_str("[ingest]\nmax_body_bytes = 3").unwrap_err();
        assert!(e.to_string().contains("ingest.max_body_bytes"), "{e}");
        let e = load_str("lisen = \"x\"").unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = load_str("listen = [").unwrap_err();
        assert!(e.to_string().contains("t.toml"), "{e}");
        let e = load_str("api_token = \"short\"").unwrap_err();
        assert!(e.to_string().contains("at least 16"), "{e}");
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let c = load_str(
            "api_token = \"supersecret-token-123\"\ndatabase_url = \"postgres://u:hunter2@h/db\"",
        )
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("supersecret"), "{dbg}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn overrides_win_over_file() {
        let file = parse_file(Path::new("t"), "listen = \"127.0.0.1:1\"").unwrap();
        let c = Config::from_file_and_overrides(
            file,
            Overrides {
                listen: Some("127.0.0.1:2".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(c.listen.port(), 2);
    }
}
