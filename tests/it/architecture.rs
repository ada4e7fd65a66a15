//! The dependency direction ARCHITECTURE.md draws, checked on the sources:
//! `core` names no feature and not `app`; a feature names `core` but no
//! other feature and not `app`. The console is app level, like `app`:
//! it may name features, and neither the core nor a feature names it.
//! One feature is built on another on purpose and says so in [`BUILT_ON`]:
//! the back office for shop registers is loyalty's register side grown a
//! journal, so it calls loyalty (never the other way round).
//! (Test modules, after `#[cfg(test)]`, may use anything.)

use std::path::{Path, PathBuf};

const FEATURES: &[&str] = &[
    "ingest",
    "orders",
    "relay",
    "alerts",
    "sms",
    "loyalty",
    "backoffice",
    "cashservers",
];

/// The allowed feature-to-feature edges: (user, used).
const BUILT_ON: &[(&str, &str)] = &[("backoffice", "loyalty")];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The non-test part of a source file.
fn code(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap();
    match text.find("#[cfg(test)]") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn uses(code: &str, module: &str) -> bool {
    code.contains(&format!("crate::{module}::")) || code.contains(&format!("crate::{module};"))
}

#[test]
fn core_names_no_feature_and_features_name_only_the_core() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut bad = Vec::new();
    let mut files = Vec::new();
    rust_files(&src.join("core"), &mut files);
    for f in &files {
        let c = code(f);
        for m in FEATURES.iter().chain(&["app", "console"]) {
            if uses(&c, m) {
                bad.push(format!("{} uses crate::{m}", f.display()));
            }
        }
    }
    for feature in FEATURES {
        let mut files = Vec::new();
        rust_files(&src.join(feature), &mut files);
        assert!(!files.is_empty(), "src/{feature} has no sources");
        for f in &files {
            let c = code(f);
            for m in FEATURES
                .iter()
                .filter(|m| *m != feature && !BUILT_ON.contains(&(*feature, **m)))
                .chain(&["app", "console"])
            {
                if uses(&c, m) {
                    bad.push(format!("{} uses crate::{m}", f.display()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "dependencies against the direction:\n{}",
        bad.join("\n")
    );
}

#[test]
fn only_the_core_log_touches_the_log_tables() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let log_dir = src.join("core").join("log");
    let log_file = src.join("core").join("log.rs");
    // The ingest benchmark's durable floor appends to the table itself, on
    // a scratch file of its own: measuring the bare table is its job.
    let floor = src.join("bench").join("floor.rs");
    let mut bad = Vec::new();
    for f in &files {
        if f.starts_with(&log_dir) || *f == log_file || *f == floor {
            continue;
        }
        let c = code(f);
        for table in [
            "events",
            "streams",
            "gaps",
            "quarantine",
            "consumer_cursors",
        ] {
            for verb in ["FROM ", "INTO ", "UPDATE ", "JOIN "] {
                if c.contains(&format!("{verb}{table} ")) || c.contains(&format!("{verb}{table}\""))
                {
                    bad.push(format!("{}: {verb}{table}", f.display()));
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "log tables used outside core::log:\n{}",
        bad.join("\n")
    );
}
