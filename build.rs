//! Build-time facts for `tillgate --version`: the git commit the binary was
//! built from. `TILLGATE_GIT_COMMIT` set in the environment wins (a Docker
//! or package build from a source tarball has no `.git`); without either
//! the version says `unknown` rather than failing the build.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=TILLGATE_GIT_COMMIT");
    // Rebuild when HEAD moves: HEAD itself (checkout) and the branch it
    // points at (commit). Paths come from git, so worktrees work too.
    for name in ["HEAD".to_string()]
        .into_iter()
        .chain(git(&["symbolic-ref", "-q", "HEAD"]))
    {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let commit = std::env::var("TILLGATE_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=TILLGATE_GIT_COMMIT={commit}");
}
