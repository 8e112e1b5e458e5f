//! Debian packages the builds and tests need, installed with apt when
//! missing: one progress line, apt's own output only when it fails.

use anyhow::{Context, Result};

use crate::cmd::{step, Cmd};

/// Installs the packages of `packages` that are missing; `what` names them
/// in the progress line, `how_long` says what to expect.
pub fn ensure(packages: &[&str], what: &str, how_long: &str) -> Result<()> {
    install(packages, what, how_long, true)
}

/// [`ensure`] without the packages' recommendations (which for some, such
/// as Prometheus, are services that would start on their own).
pub fn ensure_bare(packages: &[&str], what: &str, how_long: &str) -> Result<()> {
    install(packages, what, how_long, false)
}

fn install(packages: &[&str], what: &str, how_long: &str, recommends: bool) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            !Cmd::new("dpkg-query")
                .args(["-W", "-f", "${Status}", p])
                .read()
                .is_ok_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        step(&format!("Debian {what} present"));
        return Ok(());
    }
    step(&format!(
        "installing Debian packages {} ({how_long})",
        missing.join(" ")
    ));
    let sudo: &[&str] = if is_root() { &[] } else { &["sudo"] };
    let apt = |args: &[&str]| {
        let mut all: Vec<&str> = sudo.to_vec();
        all.push("apt-get");
        all.extend_from_slice(args);
        // `read` keeps apt's hundreds of lines out of the way and shows
        // them if it fails.
        Cmd::new(all[0])
            .args(&all[1..])
            .envs(&[("DEBIAN_FRONTEND", "noninteractive")])
            .read()
            .map(drop)
    };
    apt(&["update", "-q"]).context("apt-get update")?;
    let mut args = vec!["install", "-y", "-q"];
    if !recommends {
        args.push("--no-install-recommends");
    }
    args.extend(missing.iter().copied());
    apt(&args).with_context(|| format!("apt-get install {}", missing.join(" ")))
}

fn is_root() -> bool {
    Cmd::new("id")
        .args(["-u"])
        .read()
        .is_ok_and(|s| s.trim() == "0")
}
