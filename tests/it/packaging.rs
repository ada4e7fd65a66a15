//! The Linux package's files agree with each other and with tillgate
//! (issue 18): the default config loads, the unit's ExecStart names the
//! installed binary and config, and the config's data directory is the
//! unit's StateDirectory, the one place the hardened unit lets it write.
//! `.ci/deb` then installs the package and runs that ExecStart for real.

use std::path::{Path, PathBuf};

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn unit_value<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_packaged_config_loads_and_matches_the_unit() {
    let config = tillgate::app::config_from_str(&read("packaging/tillgate.toml"))
        .expect("packaging/tillgate.toml loads");
    assert_eq!(config.listen.to_string(), "127.0.0.1:11130");
    let unit = read("packaging/tillgate.service");
    assert_eq!(unit_value(&unit, "StateDirectory"), ["tillgate"]);
    assert_eq!(config.data_dir, PathBuf::from("/var/lib/tillgate"));
    assert_eq!(
        unit_value(&unit, "ExecStart"),
        ["/usr/bin/tillgate serve --config /etc/tillgate/tillgate.toml"]
    );
    for (key, value) in [
        ("User", "tillgate"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("KillSignal", "SIGTERM"),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(unit_value(&unit, key), [value], "{key}");
    }
    // The ExecStart arguments parse as tillgate's own command line.
    let exec = unit_value(&unit, "ExecStart")[0];
    tillgate::app::cli::command()
        .try_get_matches_from(exec.split_whitespace())
        .expect("ExecStart is a valid tillgate command line");
}

#[test]
fn the_build_script_installs_what_the_unit_names() {
    let build = read("packaging/deb/build");
    for path in [
        "/usr/bin/tillgate",
        "/usr/lib/systemd/system/tillgate.service",
        "/etc/tillgate/tillgate.toml",
    ] {
        assert!(
            build.contains(path),
            "packaging/deb/build does not install {path}"
        );
    }
    assert!(build.contains("conffiles"), "the config must be a conffile");
}
