//! The service's log: a file in `<data dir>\logs` that rotates daily (two
//! weeks kept), and every error also in the Windows event log (Application,
//! source = the service name), where Windows administrators and their
//! monitoring look first. A service has no console, so the terminal's
//! stderr set-up (`core::telemetry::init_tracing`) does not apply.

use std::path::Path;

use anyhow::Context;
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context as LayerCtx, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use windows_sys::Win32::System::EventLog::{
    DeregisterEventSource, EVENTLOG_ERROR_TYPE, RegisterEventSourceW, ReportEventW,
};

/// Daily files kept: two weeks of history for a support request.
const KEEP_FILES: usize = 14;

pub fn init(name: &str, data_dir: &Path) -> anyhow::Result<()> {
    let dir = data_dir.join("logs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("tillgate")
        .filename_suffix("log")
        .max_log_files(KEEP_FILES)
        .build(&dir)
        .with_context(|| format!("opening the log file in {}", dir.display()))?;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(file),
        )
        .with(EventLog {
            source: name.to_string(),
        })
        .try_init()
        .context("setting up logging")
}

/// Sends ERROR events to the event log.
struct EventLog {
    source: String,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for EventLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: LayerCtx<'_, S>) {
        if *event.metadata().level() != tracing::Level::ERROR {
            return;
        }
        let mut text = Text(String::new());
        event.record(&mut text);
        report_error(
            &self.source,
            &format!("{}: {}", event.metadata().target(), text.0),
        );
    }
}

/// The message first, then `key=value` for the other fields.
struct Text(String);

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}{rest}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

/// Writes one error to the Application event log under `source`. Also used
/// before logging is set up (a broken config file), so it opens the source
/// itself. Without a registered message file the Event Viewer prefixes the
/// text with "The description for Event ID 1 ... cannot be found"; the
/// text itself is complete.
pub fn report_error(source: &str, message: &str) {
    let wide = |s: &str| s.encode_utf16().chain(Some(0)).collect::<Vec<u16>>();
    let source = wide(source);
    let message = wide(message);
    // SAFETY: both strings are NUL-terminated UTF-16 that outlive the calls;
    // the handle is checked and closed here.
    unsafe {
        let h = RegisterEventSourceW(std::ptr::null(), source.as_ptr());
        if h.is_null() {
            return;
        }
        let strings = [message.as_ptr()];
        ReportEventW(
            h,
            EVENTLOG_ERROR_TYPE,
            0,
            1,
            std::ptr::null_mut(),
            1,
            0,
            strings.as_ptr(),
            std::ptr::null(),
        );
        DeregisterEventSource(h);
    }
}
