//! `spawn_app()`: the real server on 127.0.0.1:0 with a fresh SQLite file or
//! a fresh PostgreSQL database, and a client with one method per endpoint.

use std::time::Duration;

use secrecy::SecretString;
use tempfile::TempDir;
use tillgate::core::config::{Config, Storage};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// SQLite always; PostgreSQL too when `TILLGATE_TEST_DATABASE_URL` is set.
pub fn backends() -> Vec<Backend> {
    if std::env::var("TILLGATE_TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        eprintln!(
            "note: TILLGATE_TEST_DATABASE_URL is not set: PostgreSQL variant SKIPPED, SQLite only"
        );
        vec![Backend::Sqlite]
    }
}

/// A fresh, empty PostgreSQL database; its URL. Its name carries this
/// test process's id, so that the first call of a run can drop what runs
/// that have ended left behind: a developer's long-lived cluster otherwise
/// fills up with hundreds of scratch databases.
pub async fn fresh_pg_database() -> String {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    let base = std::env::var("TILLGATE_TEST_DATABASE_URL").expect("TILLGATE_TEST_DATABASE_URL");
    SWEPT.get_or_init(|| sweep_ended_runs(&base)).await;
    let prefix = format!("tg_test_p{}", std::process::id());
    tillgate::core::store::create_scratch_database(&base, &prefix)
        .await
        .expect("create test database")
        .0
}

/// Drops the scratch databases of test processes that are no longer
/// running (Linux: `/proc/PID`); elsewhere it keeps everything.
async fn sweep_ended_runs(admin_url: &str) {
    use sqlx::Connection;
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    sqlx::any::install_default_drivers();
    let Ok(mut conn) = sqlx::AnyConnection::connect(admin_url).await else {
        return;
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'tg\\_test\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    let _ = conn.close().await;
    for name in names {
        let pid = name
            .strip_prefix("tg_test_p")
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        // Unnamed (older) ones and those of ended processes go.
        let ended = pid.is_none_or(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
        if ended {
            tillgate::core::store::drop_scratch_database(admin_url, &name).await;
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub config: Config,
    pub dir: TempDir,
    pub shutdown: CancellationToken,
    pub task: Option<JoinHandle<anyhow::Result<()>>>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::for_tests(dir.path());
    if backend == Backend::Postgres {
        config.storage = Storage::Postgres {
            url: SecretString::from(fresh_pg_database().await),
        };
    }
    tweak(&mut config);
    start(config, dir).await
}

/// Starts (or restarts) a server with `config` and the data in `dir`.
pub async fn start(config: Config, dir: TempDir) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(tillgate::run(config.clone(), listener, shutdown.clone()));
    let app = TestApp {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        config,
        dir,
        shutdown,
        task: Some(task),
    };
    app.wait_healthy().await;
    app
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn wait_healthy(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.client.get(self.url("/healthz")).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not become healthy");
    }

    /// Stops the server cleanly and returns its data dir and config so a
    /// test can start it again on the same data.
    pub async fn stop(mut self) -> (Config, TempDir) {
        self.shutdown.cancel();
        if let Some(t) = self.task.take() {
            t.await
                .expect("server task panicked")
                .expect("server failed");
        }
        (self.config, self.dir)
    }

    pub async fn post_event(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .body(body)
            .send()
            .await
            .expect("post event")
    }

    /// Posts and asserts 200; returns the acknowledgement JSON.
    pub async fn ingest(&self, body: impl Into<reqwest::Body>) -> serde_json::Value {
        let r = self.post_event("/rkevent", body).await;
        assert_eq!(r.status(), 200, "ingest answered {}", r.status());
        r.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = &self.config.api_token {
            req = req.bearer_auth(secrecy::ExposeSecret::expose_secret(t));
        }
        req.send().await.expect("GET")
    }

    /// GET that must answer 200 with JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path).await;
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Waits until consumer `name` has applied everything in the log.
    pub async fn wait_consumer(&self, name: &str) {
        let head = self.get_json("/api/events?after=0&limit=1").await["head"]
            .as_i64()
            .unwrap();
        for _ in 0..2000 {
            let c = self.get_json("/api/consumers").await;
            let pos = c["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == name)
                .and_then(|i| i["position"].as_i64())
                .unwrap_or(0);
            if pos >= head {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("consumer {name} did not catch up to {head}");
    }
}
