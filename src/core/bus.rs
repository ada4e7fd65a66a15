//! The in-process bus between features: notices one feature raises for
//! another to act on, without either importing the other.
//!
//! Relay says a destination was paused, SMS says its provider stopped the
//! account or a restaurant reached its SMS cap; alerts subscribes and tells
//! the owner. The bus is a broadcast
//! channel: a feature that is not running simply has no subscriber, and a
//! slow subscriber loses the oldest notices rather than blocking the sender.

use tokio::sync::broadcast;

/// What happened, as a stable name (it becomes the alert's `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// A relay destination stopped receiving (410, or failing too long).
    RelayDestinationPaused,
    /// The SMS provider refused to send any more (no money, bad key).
    SmsStopped,
    /// A restaurant reached its hourly or daily SMS cap: further guest SMS
    /// are refused until the window has room (a rush, or SMS pumping).
    SmsCapReached,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::RelayDestinationPaused => "relay_destination_paused",
            NoticeKind::SmsStopped => "sms_stopped",
            NoticeKind::SmsCapReached => "sms_cap_reached",
        }
    }
}

impl std::fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something an operator should hear about.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OperatorEvent {
    pub kind: NoticeKind,
    pub rest_code: Option<String>,
    /// Plain text for the owner.
    pub text: String,
}

/// The sending side, shared by every feature.
///
/// It also carries the handles one feature offers to features started
/// after it ([`Bus::offer`]): the back office journals a receipt with a
/// card through loyalty's decision path, which loyalty alone owns.
#[derive(Debug, Clone)]
pub struct Bus(
    broadcast::Sender<OperatorEvent>,
    std::sync::Arc<std::sync::Mutex<axum::http::Extensions>>,
);

impl Default for Bus {
    fn default() -> Self {
        Bus(broadcast::channel(256).0, Default::default())
    }
}

impl Bus {
    /// Raises a notice; nobody listening is not an error.
    pub fn raise(&self, event: OperatorEvent) {
        let _ = self.0.send(event);
    }
    pub fn subscribe(&self) -> broadcast::Receiver<OperatorEvent> {
        self.0.subscribe()
    }

    /// Offers a handle (one per type) to features started later.
    pub fn offer<T: Clone + Send + Sync + 'static>(&self, handle: T) {
        self.1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(handle);
    }

    /// Takes the handle of type `T` an earlier feature offered, if it did.
    /// Taken, not copied: a handle may keep its feature's workers alive,
    /// and the bus lives as long as any feature's workers do.
    pub fn take<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.1
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove::<T>()
    }
}
