//! Bot commands by getUpdates long polling: `/report`, `/report N`,
//! `/status`, `/mute 1h`. Only chats named in the config are answered.
//!
//! Answers go through the outbox like alerts (same rate limits, same
//! durability), and the update offset is stored in the same transaction as
//! the answers, so a restart neither skips a command nor answers it twice.

use std::time::Duration;

use sqlx::Row;

use super::outbox;
use super::payload::Alert;
use super::report;
use super::settings::{Lang, Settings};
use super::telegram::{Client, TgError, Update};
use crate::core::log;
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
                        None => sqlx::query_scalar::<_, Option<i64>>(
                            "SELECT shift_num FROM alerts_rests WHERE rest_code = $1",
                        )
                        .bind(&rest)
                        .fetch_optional(&self.db.read)
                        .await?
                        .flatten(),
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
                outbox::mute(&self.db, chat, now_ms + d.as_millis() as i64).await?;
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
            lines.push(format!(
                "<b>{}</b>",
                super::text::escape(&self.settings.restaurant_name(&rest))
            ));
            let online = sqlx::query(
                "SELECT name, last_event_time FROM alerts_stations WHERE rest_code = $1 AND started = 1 ORDER BY name",
            )
            .bind(&rest)
            .fetch_all(&self.db.read)
            .await?;
            lines.push(self.say(
                &format!("Stations online: {}", online.len()),
                &format!("Кассы онлайн: {}", online.len()),
            ));
            for r in online {
                let name: String = r.try_get(0)?;
                let t: Option<String> = r.try_get(1)?;
                lines.push(format!(
                    "  {} — {}",
                    super::text::escape(&name),
                    t.unwrap_or_else(|| "—".into())
                ));
            }
            let streams = sqlx::query(
                "SELECT stream_guid, last_seen FROM streams WHERE rest_code = $1 ORDER BY last_seen DESC LIMIT 5",
            )
            .bind(&rest)
            .fetch_all(&self.db.read)
            .await?;
            for r in streams {
                let g: String = r.try_get(0)?;
                let seen: i64 = r.try_get(1)?;
                lines.push(self.say(
                    &format!(
                        "Cash server stream {}: last event {}",
                        super::text::escape(&g),
                        crate::core::clock::ms_to_rfc3339(seen)
                    ),
                    &format!(
                        "Поток кассового сервера {}: последнее событие {}",
                        super::text::escape(&g),
                        crate::core::clock::ms_to_rfc3339(seen)
                    ),
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
            outbox::enqueue(&mut tx, a, &[*chat], now_ms).await?;
        }
        outbox::set_meta(&mut tx, "tg_update_offset", last + 1).await?;
        tx.commit().await?;
        Ok(out.len())
    }

    /// One long poll and its answers.
    pub async fn run_once(&self) -> Result<usize, BotError> {
        let offset = outbox::meta(&self.db, "tg_update_offset").await?;
        let updates = self.client.get_updates(offset, self.poll_timeout).await?;
        Ok(self.handle(&updates, crate::core::clock::now_ms()).await?)
    }
}
