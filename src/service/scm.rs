//! Talking to the Windows service control manager: install, uninstall,
//! start, stop, status. The service itself is in `run.rs`.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use windows_service::service::{
    Service, ServiceAccess, ServiceAction, ServiceActionType, ServiceErrorControl, ServiceExitCode,
    ServiceFailureActions, ServiceFailureResetPeriod, ServiceInfo, ServiceStartType, ServiceState,
    ServiceType,
};
use windows_service::service_manager::{ServiceManager, ServiceManagerAccess};

/// How long `start` and `stop` wait for the service to get there. Stopping
/// commits what was received first, which takes well under this.
const WAIT: Duration = Duration::from_secs(60);

fn manager(access: ServiceManagerAccess) -> anyhow::Result<ServiceManager> {
    ServiceManager::local_computer(None::<&str>, access)
        .context("cannot reach the service control manager (run as Administrator?)")
}

fn open(name: &str, access: ServiceAccess) -> anyhow::Result<Service> {
    manager(ServiceManagerAccess::CONNECT)?
        .open_service(name, access)
        .with_context(|| format!("cannot open service {name:?} (is it installed?)"))
}

/// Registers the service: own process, LocalSystem, automatic start, and
/// recovery that restarts it 5 s, 30 s and 60 s after a failure, also when
/// it stopped with an error rather than crashing.
pub fn install(name: &str, config: Option<&Path>) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find tillgate.exe's own path")?;
    let mut args: Vec<OsString> =
        vec!["service".into(), "run".into(), "--name".into(), name.into()];
    if let Some(config) = config {
        let abs = std::fs::canonicalize(config)
            .with_context(|| format!("config file {}", config.display()))?;
        // Loading it now refuses a broken file at install time, not at the
        // first boot.
        let opts = tillgate::core::config::ServerOpts {
            config: Some(abs.clone()),
            ..Default::default()
        };
        tillgate::app::load_config(&opts)?;
        args.extend([OsString::from("--config"), plain_path(&abs)]);
    }
    let info = ServiceInfo {
        name: name.into(),
        display_name: format!("tillgate ({name})").into(),
        service_type: ServiceType::OWN_PROCESS,
        start_type: ServiceStartType::AutoStart,
        error_control: ServiceErrorControl::Normal,
        executable_path: exe,
        launch_arguments: args,
        dependencies: vec![],
        account_name: None,
        account_password: None,
    };
    let service = manager(ServiceManagerAccess::CONNECT | ServiceManagerAccess::CREATE_SERVICE)?
        .create_service(&info, ServiceAccess::CHANGE_CONFIG | ServiceAccess::START)
        .with_context(|| format!("cannot create service {name:?}"))?;
    service
        .set_description("Hub between r_keeper cash servers and everything around them")
        .context("setting the description")?;
    let restart = |secs| ServiceAction {
        action_type: ServiceActionType::Restart,
        delay: Duration::from_secs(secs),
    };
    let recovery = service
        .update_failure_actions(ServiceFailureActions {
            reset_period: ServiceFailureResetPeriod::After(Duration::from_secs(24 * 3600)),
            reboot_msg: None,
            command: None,
            actions: Some(vec![restart(5), restart(30), restart(60)]),
        })
        .and_then(|()| service.set_failure_actions_on_non_crash_failures(true));
    match recovery {
        Ok(()) => {}
        // ERROR_INVALID_LEVEL: a service manager without recovery settings.
        // Every Windows has them; Wine's does not. The service works
        // without them, only not restarted after a failure: say so.
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(124) => {
            eprintln!(
                "warning: this service control manager has no recovery settings (Wine?): \
                 the service is installed but will not be restarted after a failure"
            )
        }
        Err(e) => return Err(e).context("setting the recovery actions (restart on failure)"),
    }
    println!("installed service {name:?}; start it with `tillgate service start --name {name}`");
    Ok(())
}

/// `canonicalize` gives `\\?\C:\...`; the plain form reads better in the
/// services console and works the same.
fn plain_path(p: &Path) -> OsString {
    let s = p.as_os_str().to_string_lossy();
    match s.strip_prefix(r"\\?\") {
        Some(rest) if !rest.starts_with("UNC\\") => rest.into(),
        _ => p.as_os_str().to_owned(),
    }
}

pub fn uninstall(name: &str) -> anyhow::Result<()> {
    let service = open(
        name,
        ServiceAccess::QUERY_STATUS | ServiceAccess::STOP | ServiceAccess::DELETE,
    )?;
    if service.query_status()?.current_state != ServiceState::Stopped {
        stop_and_wait(&service, name)?;
    }
    service
        .delete()
        .with_context(|| format!("cannot delete service {name:?}"))?;
    println!("uninstalled service {name:?}; the data directory is kept");
    Ok(())
}

pub fn start(name: &str) -> anyhow::Result<()> {
    let service = open(name, ServiceAccess::QUERY_STATUS | ServiceAccess::START)?;
    match service.start::<&OsStr>(&[]) {
        Ok(()) => {}
        // ERROR_SERVICE_ALREADY_RUNNING: the goal is reached (an automatic
        // start may have come first).
        Err(windows_service::Error::Winapi(e)) if e.raw_os_error() == Some(1056) => {}
        Err(e) => return Err(e).with_context(|| format!("cannot start service {name:?}")),
    }
    let st = wait_for(&service, |s| s != ServiceState::StartPending)?;
    if st.current_state != ServiceState::Running {
        bail!(
            "service {name:?} did not start ({}); its log is in the data directory's logs folder \
             and errors are in the Windows event log",
            exit_text(&st.exit_code)
        );
    }
    println!("service {name:?} running");
    Ok(())
}

pub fn stop(name: &str) -> anyhow::Result<()> {
    let service = open(name, ServiceAccess::QUERY_STATUS | ServiceAccess::STOP)?;
    stop_and_wait(&service, name)?;
    println!("service {name:?} stopped");
    Ok(())
}

fn stop_and_wait(service: &Service, name: &str) -> anyhow::Result<()> {
    if service.query_status()?.current_state == ServiceState::Stopped {
        return Ok(());
    }
    service
        .stop()
        .with_context(|| format!("cannot stop service {name:?}"))?;
    wait_for(service, |s| s == ServiceState::Stopped)?;
    Ok(())
}

pub fn status(name: &str) -> anyhow::Result<()> {
    let st = open(name, ServiceAccess::QUERY_STATUS)?.query_status()?;
    let state = match st.current_state {
        ServiceState::Stopped => "stopped",
        ServiceState::StartPending => "starting",
        ServiceState::StopPending => "stopping",
        ServiceState::Running => "running",
        ServiceState::ContinuePending | ServiceState::PausePending | ServiceState::Paused => {
            "paused"
        }
    };
    match st.process_id {
        Some(pid) => println!("service {name:?}: {state} (pid {pid})"),
        None if st.current_state == ServiceState::Stopped => {
            println!("service {name:?}: {state} ({})", exit_text(&st.exit_code))
        }
        None => println!("service {name:?}: {state}"),
    }
    Ok(())
}

fn exit_text(code: &ServiceExitCode) -> String {
    match code {
        ServiceExitCode::Win32(0) => "exit code 0".into(),
        ServiceExitCode::Win32(c) => format!("Windows error {c}"),
        ServiceExitCode::ServiceSpecific(c) => format!("tillgate exit code {c}"),
    }
}

fn wait_for(
    service: &Service,
    done: impl Fn(ServiceState) -> bool,
) -> anyhow::Result<windows_service::service::ServiceStatus> {
    let until = Instant::now() + WAIT;
    loop {
        let st = service.query_status()?;
        if done(st.current_state) {
            return Ok(st);
        }
        if Instant::now() > until {
            bail!("the service is still {:?} after {WAIT:?}", st.current_state);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
