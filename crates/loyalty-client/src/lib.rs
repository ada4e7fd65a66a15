//! The cash-register side of tillgate's loyalty processing.
//!
//! [`Client`] calls `/api/loyalty/v1/*` with the register's HTTP Basic
//! credentials. When tillgate cannot be reached (connection refused, time
//! out, 5xx) a purchase is not lost: it is written to a local SQLite queue
//! and the caller is told the sale went through *offline* — bonus will be
//! earned once the link is back, but no discount was given and no bonus was
//! spent, because those need the server's view of the balance (registers in
//! the field behave the same way when the processing centre is down).
//! [`Client::flush`] sends the queue in order with each operation's original
//! register-local time, so the server applies the promotions valid then.
//! Every queued operation keeps its `operation_id`, so sending the same
//! batch twice (a crash between send and delete, a copied queue file) has
//! one effect: the server answers a repeat with its first answer.
//!
//! Every request carries the queue's depth (header
//! `X-Tillgate-Queue-Depth`), so the back office knows which registers
//! still have offline sales to send before it resynchronises
//! accumulations; [`Client::ping`] is the register's "check connection".

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

/// How long registers in the field wait for the processing centre: about
/// three seconds, then the cashier is told the link is down.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// tillgate answered with an error a cashier can act on.
    #[error("{code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    /// tillgate could not be reached; only purchases are queued.
    #[error("tillgate is unreachable: {0}")]
    Unreachable(String),
    #[error("offline queue: {0}")]
    Queue(#[from] sqlx::Error),
    #[error("unexpected answer from tillgate: {0}")]
    Protocol(String),
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// e.g. `http://tillgate.local:11130`
    pub base_url: String,
    pub register: String,
    pub password: SecretString,
    pub timeout: Duration,
}

/// The header every request reports the offline queue depth in.
pub const QUEUE_HEADER: &str = "x-tillgate-queue-depth";

/// How the cashier entered a card: the server checks the cashier's
/// "manual card number entry" right for a typed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardEntry {
    Scanned,
    Manual,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identifier {
    /// `auto`, `card`, `barcode`, `track` or `phone`.
    pub kind: String,
    pub value: String,
    /// How it was entered; sent beside the identifier as `card_entry`
    /// (absent: the server treats it as typed where rights are checked).
    #[serde(skip)]
    pub entry: Option<CardEntry>,
}

impl Identifier {
    pub fn auto(value: impl Into<String>) -> Self {
        Identifier {
            kind: "auto".into(),
            value: value.into(),
            entry: None,
        }
    }

    /// Read by a scanner or card reader.
    pub fn scanned(mut self) -> Self {
        self.entry = Some(CardEntry::Scanned);
        self
    }

    /// Typed by the cashier.
    pub fn typed(mut self) -> Self {
        self.entry = Some(CardEntry::Manual);
        self
    }
}

/// Puts `id` and how it was entered into a request body.
fn put_identifier(body: &mut Value, id: &Identifier) {
    body["identifier"] = json!(id);
    if let Some(e) = id.entry {
        body["card_entry"] = json!(e);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub goods_id: String,
    /// Kopecks per unit.
    pub price: i64,
    /// Thousandths of a unit.
    pub quantity: i64,
    /// Kopecks.
    pub amount: i64,
}

/// A purchase as the register asks for it.
#[derive(Debug, Clone)]
pub struct Purchase {
    pub operation_id: String,
    pub cashier: String,
    /// Register local time, no zone: `2026-10-03T16:05:00`.
    pub local_time: String,
    pub identifier: Identifier,
    pub lines: Vec<Line>,
    pub bonus_spend: i64,
}

/// What became of a purchase.
#[derive(Debug, Clone, PartialEq)]
pub enum PurchaseOutcome {
    /// tillgate holds it; confirm or cancel it.
    Held(Value),
    /// tillgate was unreachable: the sale is queued to earn bonus later.
    /// No discount was given and no bonus spent; `message` says so for the
    /// cashier's screen.
    Offline {
        operation_id: String,
        bonus_spend_refused: i64,
        message: String,
    },
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlushReport {
    pub sent: usize,
    /// Refused by tillgate (e.g. unknown card); kept in the `rejected`
    /// table for the operator, no longer blocking the queue.
    pub rejected: usize,
    /// Still queued because tillgate became unreachable again.
    pub left: usize,
}

pub struct Client {
    http: reqwest::Client,
    settings: Settings,
    queue: SqlitePool,
}

impl Client {
    /// Opens (creating if needed) the queue file at `queue_path`.
    pub async fn open(settings: Settings, queue_path: &Path) -> Result<Client, ClientError> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", queue_path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A queued sale must survive a power cut at the till.
            .synchronous(SqliteSynchronous::Full);
        let queue = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS queue (seq INTEGER PRIMARY KEY AUTOINCREMENT, operation_id TEXT NOT NULL UNIQUE, body TEXT NOT NULL, queued_at TEXT NOT NULL)",
        )
        .execute(&queue)
        .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS rejected (operation_id TEXT PRIMARY KEY, body TEXT NOT NULL, status INTEGER NOT NULL, error TEXT NOT NULL)",
        )
        .execute(&queue)
        .await?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .build()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(Client {
            http,
            settings,
            queue,
        })
    }

    pub async fn close(self) {
        self.queue.close().await;
    }

    fn common(&self, operation_id: &str, cashier: &str, local_time: &str) -> Value {
        json!({
            "operation_id": operation_id,
            "register": self.settings.register,
            "cashier": cashier,
            "local_time": local_time,
        })
    }

    /// One call; connection problems and 5xx are `Unreachable`.
    pub async fn call(&self, op: &str, body: &Value) -> Result<Value, ClientError> {
        let url = format!(
            "{}/api/loyalty/v1/{op}",
            self.settings.base_url.trim_end_matches('/')
        );
        let depth = self.pending().await?;
        let r = self
            .http
            .post(url)
            .basic_auth(
                &self.settings.register,
                Some(self.settings.password.expose_secret()),
            )
            .header(QUEUE_HEADER, depth.to_string())
            .json(body)
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        Self::answer(r).await
    }

    /// The register's "check connection": tillgate's time, the register's
    /// store, its switches and the cashiers' rights. A wrong password is
    /// `Refused` with status 401.
    pub async fn ping(&self) -> Result<Value, ClientError> {
        let url = format!(
            "{}/api/backoffice/v1/ping",
            self.settings.base_url.trim_end_matches('/')
        );
        let depth = self.pending().await?;
        let r = self
            .http
            .get(url)
            .basic_auth(
                &self.settings.register,
                Some(self.settings.password.expose_secret()),
            )
            .header(QUEUE_HEADER, depth.to_string())
            .send()
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        Self::answer(r).await
    }

    async fn answer(r: reqwest::Response) -> Result<Value, ClientError> {
        let status = r.status();
        let text = r
            .text()
            .await
            .map_err(|e| ClientError::Unreachable(e.to_string()))?;
        if status.is_server_error() {
            return Err(ClientError::Unreachable(format!("{status}: {text}")));
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|_| ClientError::Protocol(format!("{status}: {text}")))?;
        if status.is_success() {
            return Ok(v);
        }
        Err(ClientError::Refused {
            status: status.as_u16(),
            code: v["error"]["code"].as_str().unwrap_or("unknown").to_string(),
            message: v["error"]["message"].as_str().unwrap_or("").to_string(),
        })
    }

    pub async fn balance(
        &self,
        operation_id: &str,
        cashier: &str,
        local_time: &str,
        id: &Identifier,
    ) -> Result<Value, ClientError> {
        let mut b = self.common(operation_id, cashier, local_time);
        put_identifier(&mut b, id);
        self.call("balance", &b).await
    }

    pub async fn calculate(
        &self,
        operation_id: &str,
        cashier: &str,
        local_time: &str,
        id: &Identifier,
        lines: &[Line],
    ) -> Result<Value, ClientError> {
        let mut b = self.common(operation_id, cashier, local_time);
        put_identifier(&mut b, id);
        b["lines"] = json!(lines);
        self.call("calculate", &b).await
    }

    /// Purchase online, or queue it to earn offline when tillgate is
    /// unreachable. Older queued sales are sent first so the server sees
    /// this register's operations in order.
    pub async fn purchase(&self, p: &Purchase) -> Result<PurchaseOutcome, ClientError> {
        if self.pending().await? > 0 {
            // Best effort: if the link is still down the new sale queues
            // behind the old ones, which keeps the order.
            let _ = self.flush().await;
        }
        let mut body = self.common(&p.operation_id, &p.cashier, &p.local_time);
        put_identifier(&mut body, &p.identifier);
        body["lines"] = json!(p.lines);
        if self.pending().await? == 0 {
            let mut online = body.clone();
            online["bonus_spend"] = json!(p.bonus_spend);
            match self.call("purchase", &online).await {
                Ok(v) => return Ok(PurchaseOutcome::Held(v)),
                Err(ClientError::Unreachable(_)) => {}
                Err(e) => return Err(e),
            }
        }
        body["offline"] = json!(true);
        sqlx::query("INSERT INTO queue (operation_id, body, queued_at) VALUES (?, ?, datetime('now')) ON CONFLICT (operation_id) DO NOTHING")
            .bind(&p.operation_id)
            .bind(body.to_string())
            .execute(&self.queue)
            .await?;
        Ok(PurchaseOutcome::Offline {
            operation_id: p.operation_id.clone(),
            bonus_spend_refused: p.bonus_spend,
            message: "loyalty server unreachable: sale recorded offline; bonus will be credited when the link returns; no discount and no bonus payment offline".into(),
        })
    }

    pub async fn confirm(
        &self,
        operation_id: &str,
        cashier: &str,
        local_time: &str,
        purchase: &str,
    ) -> Result<Value, ClientError> {
        let mut b = self.common(operation_id, cashier, local_time);
        b["purchase_operation_id"] = json!(purchase);
        self.call("confirm", &b).await
    }

    pub async fn cancel(
        &self,
        operation_id: &str,
        cashier: &str,
        local_time: &str,
        purchase: &str,
    ) -> Result<Value, ClientError> {
        let mut b = self.common(operation_id, cashier, local_time);
        b["purchase_operation_id"] = json!(purchase);
        self.call("cancel", &b).await
    }

    pub async fn refund(
        &self,
        operation_id: &str,
        cashier: &str,
        local_time: &str,
        purchase: &str,
        amount: Option<i64>,
    ) -> Result<Value, ClientError> {
        let mut b = self.common(operation_id, cashier, local_time);
        b["purchase_operation_id"] = json!(purchase);
        if let Some(a) = amount {
            b["amount"] = json!(a);
        }
        self.call("refund", &b).await
    }

    pub async fn pending(&self) -> Result<usize, ClientError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue")
            .fetch_one(&self.queue)
            .await?;
        Ok(n as usize)
    }

    /// Sends queued operations oldest first. Each is removed only after
    /// tillgate answered it, so a crash resends it and the server's
    /// idempotency makes that harmless.
    pub async fn flush(&self) -> Result<FlushReport, ClientError> {
        let mut report = FlushReport::default();
        loop {
            let row = sqlx::query("SELECT seq, operation_id, body FROM queue ORDER BY seq LIMIT 1")
                .fetch_optional(&self.queue)
                .await?;
            let Some(row) = row else { break };
            let seq: i64 = row.try_get(0)?;
            let op: String = row.try_get(1)?;
            let text: String = row.try_get(2)?;
            let body: Value = serde_json::from_str(&text)
                .map_err(|e| ClientError::Protocol(format!("queued {op}: {e}")))?;
            match self.call("purchase", &body).await {
                Ok(_) => {
                    sqlx::query("DELETE FROM queue WHERE seq = ?")
                        .bind(seq)
                        .execute(&self.queue)
                        .await?;
                    report.sent += 1;
                }
                // Cards switched off (the back office resynchronising) or a
                // sign-in pause: the sale is fine, send it later.
                Err(ClientError::Refused { code, .. })
                    if code == "cards_disabled" || code == "too_many_attempts" =>
                {
                    break;
                }
                Err(ClientError::Refused {
                    status,
                    code,
                    message,
                }) => {
                    let mut tx = self.queue.begin().await?;
                    sqlx::query("INSERT INTO rejected (operation_id, body, status, error) VALUES (?, ?, ?, ?) ON CONFLICT (operation_id) DO NOTHING")
                        .bind(&op)
                        .bind(&text)
                        .bind(i64::from(status))
                        .bind(format!("{code}: {message}"))
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM queue WHERE seq = ?")
                        .bind(seq)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    report.rejected += 1;
                }
                Err(ClientError::Unreachable(_)) => break,
                Err(e) => return Err(e),
            }
        }
        report.left = self.pending().await?;
        Ok(report)
    }

    /// Operations tillgate refused during a flush: (operation_id, error).
    pub async fn rejected(&self) -> Result<Vec<(String, String)>, ClientError> {
        let rows = sqlx::query("SELECT operation_id, error FROM rejected ORDER BY operation_id")
            .fetch_all(&self.queue)
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}
