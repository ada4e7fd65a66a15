//! Bot commands by getUpdates long polling: `/report`, `/report N`,
//! `/status`, `/mute 1h`. Only chats named in the config are answered.
//!
//! Answers go through the outbox like alerts (same rate limits, same
//! durability), and the update offset is stored in the same transaction as
//! the answers, so a restart neither skips a command nor answers it twice.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::payload::Alert;
use super::report;
use super::settings::{Lang, Settings};
use super::store;
use super::telegram::{Client, TgError, Update};
use crate::core::backoff::Backoff;
use crate::core::clock::SharedClock;
use crate::core::log;
use crate::core::outbox::{OutboxWorker, Step, Wake};
use crate::core::store::{Db, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Telegram(#[from] TgError),
}

pub struct Bot {
    pub db: Db,
    pub client: Client,
    pub settings: Settings,
    pub poll_timeout: Duration,
}

/// A parsed command (`/report@MyBot 12` works too).
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Report(Option<i64>),
    Status,
    Mute(Duration),
    Unknown(String),
}

pub fn parse(text: &str) -> Option<Command> {
    let text = text.trim();
    if !text.starts_with('/') {
        return None;
    }
    let mut words = text.split_whitespace();
    let cmd = words.next()?.split('@').next()?.to_ascii_lowercase();
    let arg = words.next();
    Some(match cmd.as_str() {
        "/report" => match arg.map(str::parse::<i64>) {
            None => Command::Report(None),
            Some(Ok(n)) if n > 0 => Command::Report(Some(n)),
            Some(_) => Command::Unknown(text.to_string()),
        },
        "/status" => Command::Status,
        "/mute" => match arg.and_then(parse_duration) {
            Some(d) => Command::Mute(d),
            None => Command::Unknown(text.to_string()),
        },
        _ => Command::Unknown(text.to_string()),
    })
}

/// `30m`, `1h`, `2d` (at most a week).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (n, unit) = s.split_at(s.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    let secs = match unit {
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return None,
    };
    (secs > 0 && secs <= 7 * 86_400).then(|| Duration::from_secs(secs))
}

impl Bot {
    fn restaurants_of(&self, chat: i64) -> Vec<String> {
        if self.settings.owners_chat == Some(chat) {
            return self.settings.restaurants.keys().cloned().collect();
        }
        self.settings
            .restaurants
            .values()
            .filter(|r| r.chat == Some(chat))
            .map(|r| r.rest_code.clone())
            .collect()
    }

    fn say(&self, en: &str, ru: &str) -> String {
        match self.settings.language {
            Lang::En => en.to_string(),
            Lang::Ru => ru.to_string(),
        }
    }

    /// The answers to one command (alerts addressed to `chat` only).
    pub async fn answer(
        &self,
        chat: i64,
        cmd: Command,
        now_ms: i64,
    ) -> Result<Vec<Alert>, StoreError> {
        let note = |text: String| Alert::Operator {
            rest_code: None,
            source: "command".into(),
            text,
        };
        Ok(match cmd {
            Command::Report(n) => {
                let mut out = Vec::new();
                for rest in self.restaurants_of(chat) {
                    let shift = match n {
                        Some(n) => Some(n),
                        None => store::current_shift(&self.db, &rest).await?,
                    };
                    match shift {
                        Some(s) => out.push(Alert::ShiftReport(
                            report::compute(&self.db, &self.settings, &rest, s).await?,
                        )),
                        None => out.push(note(self.say(
                            &format!("{rest}: no shift seen yet"),
                            &format!("{rest}: смен ещё не было"),
                        ))),
                    }
                }
                out
            }
            Command::Status => vec![note(self.status(chat).await?)],
            Command::Mute(d) => {
                store::mute(&self.db, chat, now_ms + d.as_millis() as i64).await?;
                let mins = d.as_secs() / 60;
                vec![note(self.say(
                    &format!("Alerts muted for {mins} min (reports still come)."),
                    &format!("Оповещения выключены на {mins} мин. (отчёты приходят)."),
                ))]
            }
            Command::Unknown(_) => vec![note(self.say(
                "Commands: /report, /report N, /status, /mute 1h",
                "Команды: /report, /report N, /status, /mute 1h",
            ))],
        })
    }

    async fn status(&self, chat: i64) -> Result<String, StoreError> {
        let mut lines = Vec::new();
        for rest in self.restaurants_of(chat) {
            // Plain text: the operator template escapes it once, as
            // every value (escaping here too showed `&lt;b&gt;` to owners).
            lines.push(self.settings.restaurant_name(&rest));
            let online = store::online_stations(&self.db, &rest).await?;
            lines.push(self.say(
                &format!("Stations online: {}", online.len()),
                &format!("Кассы онлайн: {}", online.len()),
            ));
            for st in online {
                lines.push(format!(
                    "  {} — {}",
                    st.name,
                    st.last_event_time.unwrap_or_else(|| "—".into())
                ));
            }
            for stream in log::streams_of(&self.db, &rest, 5).await? {
                let g = &stream.stream_guid;
                let seen = crate::core::clock::ms_to_rfc3339(stream.last_seen);
                lines.push(self.say(
                    &format!("Cash server stream {g}: last event {seen}"),
                    &format!("Поток кассового сервера {g}: последнее событие {seen}"),
                ));
            }
        }
        let head = log::head(&self.db).await?;
        for (name, pos) in log::cursors(&self.db).await? {
            lines.push(self.say(
                &format!("Consumer {name}: lag {} events", (head - pos).max(0)),
                &format!(
                    "Обработчик {name}: отставание {} событий",
                    (head - pos).max(0)
                ),
            ));
        }
        Ok(lines.join("\n"))
    }

    /// Handles a batch of updates: answers known chats, stores the offset.
    pub async fn handle(&self, updates: &[Update], now_ms: i64) -> Result<usize, StoreError> {
        let Some(last) = updates.iter().map(|u| u.update_id).max() else {
            return Ok(0);
        };
        let mut out = Vec::new();
        for u in updates {
            let Some(m) = &u.message else { continue };
            let Some(cmd) = m.text.as_deref().and_then(parse) else {
                continue;
            };
            if !self.settings.known_chat(m.chat.id) {
                tracing::warn!(
                    chat = m.chat.id,
                    "bot command from a chat not in the config; ignored"
                );
                continue;
            }
            for a in self.answer(m.chat.id, cmd, now_ms).await? {
                out.push((m.chat.id, a));
            }
        }
        let mut tx = self.db.write.begin().await?;
        for (chat, a) in &out {
            store::enqueue(&mut tx, a, &[*chat], now_ms).await?;
        }
        store::set_meta(&mut tx, store::UPDATE_OFFSET, last + 1).await?;
        tx.commit().await?;
        Ok(out.len())
    }

    /// One long poll and its answers. Shutdown abandons the poll (nothing
    /// was taken from Telegram until the offset is stored), so a stop does
    /// not wait out the poll timeout.
    pub async fn poll_once(
        &self,
        now: &SharedClock,
        shutdown: &CancellationToken,
    ) -> Result<usize, BotError> {
        let offset = store::meta(&self.db, store::UPDATE_OFFSET).await?;
        let updates = tokio::select! {
            _ = shutdown.cancelled() => return Ok(0),
            u = self.client.get_updates(offset, self.poll_timeout) => u?,
        };
        Ok(self.handle(&updates, now.now_ms()).await?)
    }
}

/// The bot on the worker loop: polls again at once after an answer, and
/// after a failure waits 1 s, 2 s, 4 s ... up to a minute (Telegram's
/// `retry_after` as the floor).
pub struct BotPoller {
    pub bot: Bot,
    pub clock: SharedClock,
    /// The sender's wake-up, for the answers queued.
    pub sender: Wake,
    pub shutdown: CancellationToken,
    pub backoff: Backoff,
    failures: u32,
    /// Where the bot's settings and token are refreshed from before each
    /// poll: a token set in the console starts the commands.
    live: Option<crate::alerts::settings::live::LiveSettings>,
}

impl BotPoller {
    pub fn new(bot: Bot, clock: SharedClock, sender: Wake, shutdown: CancellationToken) -> Self {
        BotPoller {
            bot,
            clock,
            sender,
            shutdown,
            // Jitter: a restart of many tillgates behind one proxy should
            // not poll in step.
            backoff: Backoff::doubling(Duration::from_secs(1), Duration::from_secs(60))
                .with_jitter(0.2),
            failures: 0,
            live: None,
        }
    }

    /// Follows the live settings (token, chats, restaurants).
    pub fn with_live(mut self, live: crate::alerts::settings::live::LiveSettings) -> Self {
        self.live = Some(live);
        self
    }

    /// Refreshes the bot from the live settings; false when it has no
    /// token or its commands are off.
    async fn refresh(&mut self) -> Result<bool, StoreError> {
        let Some(live) = &self.live else {
            return Ok(true);
        };
        let s = live.get().await?;
        let Some(token) = s.bot_token.clone() else {
            return Ok(false);
        };
        if !s.commands {
            return Ok(false);
        }
        self.bot.client = super::telegram::Client::new(&s.api_base, token);
        self.bot.settings = (*s).clone();
        Ok(true)
    }
}

impl OutboxWorker for BotPoller {
    type Error = StoreError;

    async fn run_once(&mut self) -> Result<Step, StoreError> {
        if !self.refresh().await? {
            return Ok(Step::Wait(Duration::from_secs(5)));
        }
        match self.bot.poll_once(&self.clock, &self.shutdown).await {
            Ok(n) => {
                self.failures = 0;
                if n > 0 {
                    self.sender.notify();
                }
                Ok(Step::Busy)
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let retry_after = match &e {
                    BotError::Telegram(TgError::RetryAfter(d)) => Some(*d),
                    _ => None,
                };
                tracing::warn!(error = %e, failures = self.failures, "bot polling failed; retrying");
                Ok(Step::Wait(self.backoff.delay(self.failures, retry_after)))
            }
        }
    }
}
