//! The service itself: what the service control manager starts as
//! `tillgate.exe service run --name NAME [--config FILE]`.
//!
//! A stop (or the machine shutting down) cancels the same token Ctrl+C
//! cancels in a terminal, through `app::cli::begin_shutdown`; the manager
//! is told "stop pending" while received events are committed and
//! consumers stop at a clean cursor, then "stopped". A failure ends with a
//! service-specific exit code, which the recovery settings `install` made
//! answer with a restart.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use windows_service::service::{
    ServiceControl, ServiceControlAccept, ServiceExitCode, ServiceState, ServiceStatus, ServiceType,
};
use windows_service::service_control_handler::{self, ServiceControlHandlerResult};
use windows_service::{define_windows_service, service_dispatcher};

use super::logging;

/// The arguments `run` was started with: the dispatcher calls
/// `service_main` on its own thread with only the manager's start
/// parameters, so ours are handed over here.
static ARGS: OnceLock<(String, Option<PathBuf>)> = OnceLock::new();

/// Exit code of a service that failed (config, storage, port): not 0, so
/// the recovery actions restart it.
const FAILED: u32 = 1;

define_windows_service!(ffi_service_main, service_main);

pub fn run(name: String, config: Option<PathBuf>) -> anyhow::Result<()> {
    let _ = ARGS.set((name.clone(), config));
    // ERROR_FAILED_SERVICE_CONTROLLER_CONNECT: started from a terminal.
    service_dispatcher::start(&name, ffi_service_main).map_err(|e| match &e {
        windows_service::Error::Winapi(io) if io.raw_os_error() == Some(1063) => anyhow::anyhow!(
            "`service run` is what the service control manager starts; in a terminal use \
             `tillgate serve`, or `tillgate service start`"
        ),
        _ => anyhow::Error::new(e).context("service dispatcher"),
    })
}

fn service_main(_start_args: Vec<OsString>) {
    let Some((name, config)) = ARGS.get().cloned() else {
        return;
    };
    // Errors after the control handler is registered are reported inside;
    // one before it has no log file yet: the event log only.
    if let Err(e) = serve(&name, config) {
        logging::report_error(&name, &format!("service {name} could not start: {e:#}"));
    }
}

fn serve(name: &str, config: Option<PathBuf>) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let on_stop = shutdown.clone();
    let handle = service_control_handler::register(name, move |control| match control {
        ServiceControl::Stop | ServiceControl::Shutdown => {
            tillgate::app::cli::begin_shutdown(&on_stop);
            ServiceControlHandlerResult::NoError
        }
        ServiceControl::Interrogate => ServiceControlHandlerResult::NoError,
        _ => ServiceControlHandlerResult::NotImplemented,
    })
    .context("registering the service control handler")?;
    let status = |state, exit: u32, wait: Duration| {
        let _ = handle.set_service_status(ServiceStatus {
            service_type: ServiceType::OWN_PROCESS,
            current_state: state,
            controls_accepted: if state == ServiceState::Running {
                ServiceControlAccept::STOP | ServiceControlAccept::SHUTDOWN
            } else {
                ServiceControlAccept::empty()
            },
            exit_code: if exit == 0 {
                ServiceExitCode::Win32(0)
            } else {
                ServiceExitCode::ServiceSpecific(exit)
            },
            checkpoint: 0,
            wait_hint: wait,
            process_id: None,
        });
    };
    status(ServiceState::StartPending, 0, Duration::from_secs(30));

    let result = (|| {
        let opts = tillgate::core::config::ServerOpts {
            config,
            ..Default::default()
        };
        let config = tillgate::app::load_config(&opts)?;
        logging::init(name, &config.data_dir)?;
        tracing::info!(
            service = name,
            version = env!("CARGO_PKG_VERSION"),
            "service starting"
        );
        let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
        rt.block_on(async {
            // "Running" once the port is ours: `service start` then returns
            // only when cash servers can post.
            let running = || status(ServiceState::Running, 0, Duration::ZERO);
            let serving = tillgate::app::cli::serve_config(config, shutdown.clone(), running);
            tokio::pin!(serving);
            tokio::select! {
                r = &mut serving => r,
                () = shutdown.cancelled() => {
                    status(ServiceState::StopPending, 0, Duration::from_secs(60));
                    serving.await
                }
            }
        })
    })();
    // Logged before "stopped" is reported: the manager may end the process
    // right after.
    match &result {
        Ok(()) => tracing::info!(service = name, "service stopped"),
        // Once logging is set up an error reaches the event log through it;
        // before (a broken config file) only directly.
        Err(e) if tracing::dispatcher::has_been_set() => {
            tracing::error!("service {name} stopped: {e:#}")
        }
        Err(e) => logging::report_error(name, &format!("service {name} stopped: {e:#}")),
    }
    status(
        ServiceState::Stopped,
        if result.is_ok() { 0 } else { FAILED },
        Duration::ZERO,
    );
    Ok(())
}
