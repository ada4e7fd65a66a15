//! Configuration: one typed `Config` built from defaults, an optional TOML
//! file, `TILLGATE_*` environment variables and command-line flags, in that
//! order of precedence (later wins).
//!
//! The core owns the settings every feature shares (listen address, storage,
//! the operator token, ingest limits, log retention). Each feature owns its
//! `[section]`: it parses and validates it itself ([`SectionParser`]), and
//! reads its settings back with [`Config::section`], so this file names no
//! feature.
//!
//! Everything is validated once, at start, so a misconfigured server refuses
//! to run with a message naming the setting instead of failing at 3 a.m.
//! when the first event arrives.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The port ProAlert's agent used: cash servers in the field already point here.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:11130";
pub const DEFAULT_DATA_DIR: &str = "./tillgate-data";
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// `./tillgate-data`, except on Windows: a service starts in
/// `C:\Windows\System32`, so there the default is `%ProgramData%\tillgate`,
/// where Windows programs keep machine-wide data.
fn default_data_dir() -> PathBuf {
    #[cfg(windows)]
    if let Some(p) = std::env::var_os("ProgramData") {
        return PathBuf::from(p).join("tillgate");
    }
    PathBuf::from(DEFAULT_DATA_DIR)
}

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
#[derive(Default, Deserialize)]
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
    pub http: HttpFileConfig,
    /// Every other top-level key: a feature's section, handed to the
    /// feature of that name (an unknown key is an error).
    #[serde(flatten)]
    pub sections: toml::Table,
    /// The file's path and text, kept so a feature's section is read again
    /// from the text and its errors point at the line.
    #[serde(skip)]
    source: Option<(PathBuf, Arc<str>)>,
}

impl FileConfig {
    /// Takes section `name` out of the file for its feature.
    pub fn take_section(&mut self, name: &'static str) -> SectionSource {
        SectionSource {
            name,
            value: self.sections.remove(name),
            file: self.source.clone(),
        }
    }
}

/// One feature's `[section]` as found in the file (or absent).
#[derive(Debug, Clone)]
pub struct SectionSource {
    pub name: &'static str,
    value: Option<toml::Value>,
    file: Option<(PathBuf, Arc<str>)>,
}

impl SectionSource {
    /// A section that is not in the file.
    pub fn absent(name: &'static str) -> Self {
        SectionSource {
            name,
            value: None,
            file: None,
        }
    }

    pub fn is_absent(&self) -> bool {
        self.value.is_none()
    }

    /// Deserializes the section (its defaults when absent). When it came
    /// from a file, it is read again from the file's text so that an error
    /// names the file, the line and the setting.
    pub fn parse<T: serde::de::DeserializeOwned + Default>(self) -> Result<T, ConfigError> {
        let Some(value) = self.value else {
            return Ok(T::default());
        };
        if let Some((path, text)) = &self.file {
            return match one_section::<T>(text, self.name) {
                Ok(Some(v)) => Ok(v),
                Ok(None) => Ok(T::default()),
                Err(e) => Err(ConfigError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                }),
            };
        }
        value.try_into().map_err(|e: toml::de::Error| {
            ConfigError::invalid(self.name, e.message().trim_end().to_string())
        })
    }
}

/// Deserializes only the top-level table `name` of a TOML document,
/// skipping the rest, so errors keep their position in the document.
fn one_section<T: serde::de::DeserializeOwned>(
    text: &str,
    name: &str,
) -> Result<Option<T>, toml::de::Error> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
    struct Pick<'n, T>(&'n str, std::marker::PhantomData<T>);
    impl<'de, T: serde::de::DeserializeOwned> Visitor<'de> for Pick<'_, T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a table")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
            let mut found = None;
            while let Some(key) = map.next_key::<String>()? {
                if key == self.0 {
                    found = Some(map.next_value::<T>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    impl<'de, T: serde::de::DeserializeOwned> DeserializeSeed<'de> for Pick<'_, T> {
        type Value = Option<T>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            d.deserialize_map(self)
        }
    }
    Pick::<T>(name, std::marker::PhantomData).deserialize(toml::de::Deserializer::parse(text)?)
}

impl fmt::Debug for FileConfig {
    /// Sections may hold secrets (bot tokens, API keys): only their names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("sections", &self.sections.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
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
    /// Total bytes of unreadable bodies kept in the quarantine; the oldest
    /// go first.
    pub quarantine_max_bytes: Option<u64>,
    /// Quarantined bodies older than this many days are dropped.
    pub quarantine_max_days: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFileConfig {
    /// Events older than this many days may be pruned once every consumer
    /// has passed them. 0 keeps everything.
    pub retention_days: Option<u64>,
    /// How event bodies are stored: "lz4" (the default) or "none".
    pub compression: Option<String>,
    /// How far back a resent (guid, seqnumber) is compared with the events
    /// already stored under that key (default 7 days).
    pub dedupe_window_days: Option<u64>,
}

/// `[http]`: who may reach the server and how long a connection may hold
/// it (docs/security.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFileConfig {
    /// Host names (as browsers send them in `Host`) besides loopback names
    /// under which this server may be reached without an API token.
    pub public_hosts: Option<Vec<String>>,
    /// Proxies whose `X-Forwarded-For` names the client: addresses or
    /// CIDR networks (`10.0.0.0/8`). Anyone else's header is ignored.
    pub trusted_proxies: Option<Vec<String>>,
    /// Time a client has to send a request's headers, in seconds.
    pub header_timeout_secs: Option<u64>,
    /// An idle keep-alive connection is closed after this many seconds.
    pub idle_timeout_secs: Option<u64>,
    /// Open connections at most; more wait in the kernel's backlog.
    pub max_connections: Option<usize>,
}

/// Validated `[http]`.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub public_hosts: Vec<String>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            public_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            header_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(120),
            max_connections: 4096,
        }
    }
}

impl HttpConfig {
    fn from_file(f: HttpFileConfig) -> Result<Self, ConfigError> {
        let d = HttpConfig::default();
        let mut public_hosts = Vec::new();
        for h in f.public_hosts.unwrap_or_default() {
            let h = h.trim().to_ascii_lowercase();
            if h.is_empty()
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
            {
                return Err(ConfigError::invalid(
                    "http.public_hosts",
                    format!(
                        "{h:?} is not a host name (e.g. \"tillgate.example.com\" or \"tillgate.example.com:8443\")"
                    ),
                ));
            }
            public_hosts.push(h);
        }
        let mut trusted_proxies = Vec::new();
        for p in f.trusted_proxies.unwrap_or_default() {
            let net = super::client_addr::parse_net(&p).ok_or_else(|| {
                ConfigError::invalid(
                    "http.trusted_proxies",
                    format!("{p:?} is not an address or network like 10.0.0.1 or 10.0.0.0/8"),
                )
            })?;
            trusted_proxies.push(net);
        }
        let secs = |v: Option<u64>, name: &str, default: Duration, max: u64| match v {
            None => Ok(default),
            Some(s) if (1..=max).contains(&s) => Ok(Duration::from_secs(s)),
            Some(_) => Err(ConfigError::invalid(
                name,
                format!("must be between 1 and {max} seconds"),
            )),
        };
        let max_connections = f.max_connections.unwrap_or(d.max_connections);
        if !(16..=1_000_000).contains(&max_connections) {
            return Err(ConfigError::invalid(
                "http.max_connections",
                "must be between 16 and 1000000",
            ));
        }
        Ok(HttpConfig {
            public_hosts,
            trusted_proxies,
            header_timeout: secs(
                f.header_timeout_secs,
                "http.header_timeout_secs",
                d.header_timeout,
                300,
            )?,
            idle_timeout: secs(
                f.idle_timeout_secs,
                "http.idle_timeout_secs",
                d.idle_timeout,
                3600,
            )?,
            max_connections,
        })
    }
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
    pub http: HttpConfig,
    /// Each feature's validated settings, by type.
    pub sections: Sections,
}

#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub key: Option<SecretString>,
    pub max_body_bytes: usize,
    pub reject_bad_input: bool,
    pub max_batch: usize,
    pub quarantine: super::log::QuarantineLimits,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub retention: Option<Duration>,
    /// How the log stores bodies (see `log::Codec`).
    pub compression: super::log::Codec,
    /// How far back the writer looks for the event a resend repeats.
    pub dedupe_window: Duration,
}

impl Config {
    /// Loads `path` (if any), applies overrides, validates.
    pub fn load(
        path: Option<&Path>,
        overrides: Overrides,
        parsers: &[&dyn SectionParser],
    ) -> Result<Config, ConfigError> {
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
        Config::from_file_and_overrides(file, overrides, parsers)
    }

    /// Applies `o` over `file`, validates the core settings, and hands each
    /// feature its section (`parsers`: the registered features). A
    /// top-level key no parser claims is an error, so a typo does not
    /// silently do nothing.
    pub fn from_file_and_overrides(
        mut file: FileConfig,
        o: Overrides,
        parsers: &[&dyn SectionParser],
    ) -> Result<Config, ConfigError> {
        let mut sections = Sections::default();
        for p in parsers {
            if let Some(s) = p.parse_section(file.take_section(p.section_name()))? {
                sections.insert_any(s);
            }
        }
        if let Some(unknown) = file.sections.keys().next() {
            let mut known: Vec<&str> = [
                "listen",
                "data_dir",
                "database_url",
                "api_token",
                "ingest",
                "log",
                "http",
            ]
            .to_vec();
            known.extend(parsers.iter().map(|p| p.section_name()));
            return Err(ConfigError::invalid(
                unknown,
                format!(
                    "unknown field `{unknown}`, expected one of {}",
                    known.join(", ")
                ),
            ));
        }
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
            .unwrap_or_else(default_data_dir);
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
        if !listen.ip().is_loopback() && ingest_key.is_none() {
            return Err(ConfigError::invalid(
                "ingest.key",
                format!(
                    "required because `listen` ({listen}) is not a loopback address: anyone on the network could post events (and through them send SMS and alerts); set it and add ?key=... to the cash server's DestURLs"
                ),
            ));
        }
        if let Some(k) = &ingest_key
            && !listen.ip().is_loopback()
            && k.expose_secret().len() < 16
        {
            return Err(ConfigError::invalid(
                "ingest.key",
                "must be at least 16 characters when `listen` is not a loopback address",
            ));
        }
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
        let qd = super::log::QuarantineLimits::default();
        let quarantine = super::log::QuarantineLimits {
            max_bytes: match file.ingest.quarantine_max_bytes {
                None => qd.max_bytes,
                Some(b) if (1024..=1 << 40).contains(&b) => b as i64,
                Some(_) => {
                    return Err(ConfigError::invalid(
                        "ingest.quarantine_max_bytes",
                        "must be between 1024 and 1099511627776",
                    ));
                }
            },
            max_age_ms: match file.ingest.quarantine_max_days {
                None => qd.max_age_ms,
                Some(d) if (1..=36_500).contains(&d) => d as i64 * 86_400_000,
                Some(_) => {
                    return Err(ConfigError::invalid(
                        "ingest.quarantine_max_days",
                        "must be between 1 and 36500",
                    ));
                }
            },
        };
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
        let compression = match file.log.compression.as_deref() {
            None => super::log::Codec::default(),
            Some(name) => super::log::Codec::parse(name).ok_or_else(|| {
                ConfigError::invalid(
                    "log.compression",
                    format!("must be \"lz4\" or \"none\", not {name:?}"),
                )
            })?,
        };
        let dedupe_window = match file.log.dedupe_window_days {
            None => super::log::DEFAULT_DEDUPE_WINDOW,
            Some(d) if (1..=36_500).contains(&d) => Duration::from_secs(d * 86_400),
            Some(_) => {
                return Err(ConfigError::invalid(
                    "log.dedupe_window_days",
                    "must be between 1 and 36500",
                ));
            }
        };
        let http = HttpConfig::from_file(file.http)?;
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
                quarantine,
            },
            log: LogConfig {
                retention,
                compression,
                dedupe_window,
            },
            http,
            sections,
        })
    }

    /// A feature's settings: the validated section, or its defaults when
    /// none was loaded (tests build a `Config` without any).
    pub fn section<T: Section>(&self) -> T {
        self.sections.get::<T>().cloned().unwrap_or_default()
    }

    /// A feature's settings to change in place (tests, benchmarks).
    pub fn section_mut<T: Section>(&mut self) -> &mut T {
        self.sections.get_mut_or_default::<T>()
    }

    /// Replaces a feature's settings.
    pub fn set_section<T: Section>(&mut self, value: T) {
        self.sections.insert_any(Box::new(value));
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
            &[],
        )
        .expect("test defaults are valid")
    }
}

pub fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    let mut file: FileConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    file.source = Some((path.to_path_buf(), Arc::from(text)));
    Ok(file)
}

/// A feature's validated settings: cloned into each feature at start.
/// `Default` is what the feature runs with when its section is absent.
pub trait Section: Any + fmt::Debug + Clone + Default + Send + Sync {}
impl<T: Any + fmt::Debug + Clone + Default + Send + Sync> Section for T {}

/// A [`Section`] with its type erased, as a parser returns it.
pub trait AnySection: Any + fmt::Debug + Send + Sync {
    fn clone_box(&self) -> Box<dyn AnySection>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Section> AnySection for T {
    fn clone_box(&self) -> Box<dyn AnySection> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Reads one top-level section of the file.
pub trait SectionParser {
    fn section_name(&self) -> &'static str;
    fn parse_section(
        &self,
        section: SectionSource,
    ) -> Result<Option<Box<dyn AnySection>>, ConfigError>;
}

/// Features' settings by type.
#[derive(Default)]
pub struct Sections(HashMap<TypeId, Box<dyn AnySection>>);

impl Sections {
    pub fn get<T: Section>(&self) -> Option<&T> {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|s| s.as_any().downcast_ref())
    }
    fn get_mut_or_default<T: Section>(&mut self) -> &mut T {
        self.0
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .as_any_mut()
            .downcast_mut()
            .expect("sections are keyed by their own type")
    }
    pub fn insert_any(&mut self, s: Box<dyn AnySection>) {
        let id = Any::type_id(s.as_any());
        self.0.insert(id, s);
    }
    pub fn contains<T: Section>(&self) -> bool {
        self.0.contains_key(&TypeId::of::<T>())
    }
    pub fn contains_id(&self, id: TypeId) -> bool {
        self.0.contains_key(&id)
    }
}

impl Clone for Sections {
    fn clone(&self) -> Self {
        Sections(self.0.iter().map(|(k, v)| (*k, v.clone_box())).collect())
    }
}

impl fmt::Debug for Sections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.values()).finish()
    }
}

/// The flags every command that opens the data shares (`serve` and the
/// features' subcommands). Global, so they may come anywhere on the line:
/// `tillgate users add anna --config FILE` as well as before `add`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServerOpts {
    /// TOML config file.
    #[arg(long, global = true, env = "TILLGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:11130].
    #[arg(long, global = true, env = "TILLGATE_LISTEN")]
    pub listen: Option<String>,
    /// Data directory for the embedded SQLite database [default: ./tillgate-data].
    #[arg(long = "data", global = true, env = "TILLGATE_DATA")]
    pub data_dir: Option<PathBuf>,
    /// postgres://user:pass@host/db to use PostgreSQL instead of SQLite.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Bearer token for the operator API (required off loopback).
    #[arg(
        long,
        global = true,
        env = "TILLGATE_API_TOKEN",
        hide_env_values = true
    )]
    pub api_token: Option<String>,
    /// Shared key cash servers must send as ?key= on ingest paths.
    #[arg(
        long,
        global = true,
        env = "TILLGATE_INGEST_KEY",
        hide_env_values = true
    )]
    pub ingest_key: Option<String>,
}

impl ServerOpts {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            api_token: self.api_token.clone(),
            ingest_key: self.ingest_key.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Config, ConfigError> {
        let file = parse_file(Path::new("t.toml"), text)?;
        Config::from_file_and_overrides(file, Overrides::default(), &[])
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
    fn non_loopback_needs_token_and_ingest_key() {
        let e = load_str("listen = \"0.0.0.0:11130\"").unwrap_err();
        assert!(e.to_string().contains("api_token"), "{e}");
        let e = load_str("listen = \"0.0.0.0:11130\"\napi_token = \"0123456789abcdef0\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`ingest.key`") && e.contains("not a loopback"),
            "{e}"
        );
        let e = load_str(
            "listen = \"0.0.0.0:11130\"\napi_token = \"0123456789abcdef0\"\n[ingest]\nkey = \"short\"",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`ingest.key`") && e.contains("at least 16"),
            "{e}"
        );
        let c = load_str(
            "listen = \"0.0.0.0:11130\"\napi_token = \"0123456789abcdef0\"\n[ingest]\nkey = \"0123456789abcdef\"",
        )
        .unwrap();
        assert!(c.api_token.is_some() && c.ingest.key.is_some());
        // On loopback a key stays optional and any length, as before.
        assert!(load_str("[ingest]\nkey = \"k3y\"").is_ok());
    }

    #[test]
    fn the_dedupe_window_is_a_week_unless_set_within_bounds() {
        let c = load_str("").unwrap();
        assert_eq!(c.log.dedupe_window, Duration::from_secs(7 * 86_400));
        let c = load_str("[log]\ndedupe_window_days = 30").unwrap();
        assert_eq!(c.log.dedupe_window, Duration::from_secs(30 * 86_400));
        for bad in ["0", "36501"] {
            let e = load_str(&format!("[log]\ndedupe_window_days = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("log.dedupe_window_days"), "{e}");
        }
    }

    #[test]
    fn http_settings_are_checked() {
        let c = load_str("").unwrap();
        assert_eq!(c.http.max_connections, 4096);
        let c = load_str(
            "[http]\npublic_hosts = [\"Till.Example.com\"]\ntrusted_proxies = [\"10.0.0.1\", \"192.168.0.0/16\"]\nheader_timeout_secs = 5\nidle_timeout_secs = 30\nmax_connections = 100",
        )
        .unwrap();
        assert_eq!(c.http.public_hosts, vec!["till.example.com".to_string()]);
        assert_eq!(c.http.trusted_proxies.len(), 2);
        assert_eq!(c.http.header_timeout, Duration::from_secs(5));
        for (text, setting) in [
            (
                "[http]\ntrusted_proxies = [\"10.0.0.0/33\"]",
                "http.trusted_proxies",
            ),
            (
                "[http]\ntrusted_proxies = [\"proxy.local\"]",
                "http.trusted_proxies",
            ),
            ("[http]\npublic_hosts = [\"a b\"]", "http.public_hosts"),
            (
                "[http]\nheader_timeout_secs = 0",
                "http.header_timeout_secs",
            ),
            (
                "[http]\nidle_timeout_secs = 99999",
                "http.idle_timeout_secs",
            ),
            ("[http]\nmax_connections = 1", "http.max_connections"),
        ] {
            let e = load_str(text).unwrap_err().to_string();
            assert!(e.contains(setting), "{text}: {e}");
        }
        let e = load_str("[http]\nheader_timeout = 5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
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
        let e = load_str("[log]\ncompression = \"zstd\"").unwrap_err();
        assert!(e.to_string().contains("log.compression"), "{e}");
        assert!(e.to_string().contains("\"lz4\" or \"none\""), "{e}");
        let c = load_str("[log]\ncompression = \"none\"").unwrap();
        assert_eq!(c.log.compression, crate::core::log::Codec::None);
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
            &[],
        )
        .unwrap();
        assert_eq!(c.listen.port(), 2);
    }
}
