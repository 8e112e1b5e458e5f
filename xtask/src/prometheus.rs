//! Debian's Prometheus (and promtool), for the metrics tests: the Grafana
//! panel queries run against the real server, and `/metrics` is checked
//! with `promtool check metrics`. Installed once with apt when missing.
//! Also Debian's Alertmanager, which the alert notifier tests post to.

use anyhow::{Context, Result};

use crate::cmd::{on_path, step, Cmd};

pub fn ensure() -> Result<()> {
    if on_path("prometheus") && on_path("promtool") && on_path(ALERTMANAGER) {
        return Ok(());
    }
    step("installing Prometheus (apt-get install prometheus prometheus-alertmanager)");
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
        "prometheus-alertmanager",
    ])
    .context("apt-get install prometheus prometheus-alertmanager")?;
    // The package starts a system service on :9090 that the tests do not
    // need; the tests start their own on a free port.
    let _ = Cmd::new("systemctl")
        .args(["disable", "--now", "prometheus", ALERTMANAGER])
        .succeeds();
    Ok(())
}

/// Debian's name for the Alertmanager binary (and package), passed to the
/// tests as `CELERIAC_TEST_ALERTMANAGER`.
pub const ALERTMANAGER: &str = "prometheus-alertmanager";
