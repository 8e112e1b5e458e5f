//! Debian's Prometheus (and promtool), for the metrics tests: the Grafana
//! panel queries run against the real server, and `/metrics` is checked
//! with `promtool check metrics`. Installed once with apt when missing.

use anyhow::{Context, Result};

use crate::cmd::{on_path, step, Cmd};

pub fn ensure() -> Result<()> {
    if on_path("prometheus") && on_path("promtool") {
        return Ok(());
    }
    step("installing Prometheus (apt-get install prometheus)");
    let apt = |args: &[&str]| {
        Cmd::new("apt-get")
            .args(args)
            .envs(&[("DEBIAN_FRONTEND", "noninteractive")])
            .run()
    };
    apt(&["update", "-qq"]).context("apt-get update")?;
    apt(&[
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "prometheus",
    ])
    .context("apt-get install prometheus")?;
    // The package starts a system service on :9090 that the tests do not
    // need; the tests start their own on a free port.
    let _ = Cmd::new("systemctl")
        .args(["disable", "--now", "prometheus"])
        .succeeds();
    Ok(())
}
