//! Debian's Prometheus (and promtool), for the metrics tests: the Grafana
//! panel queries run against the real server, and `/metrics` is checked
//! with `promtool check metrics`. Installed once with apt when missing.
//! Also Debian's Alertmanager, which the alert notifier tests post to.

use anyhow::Result;

use crate::cmd::{on_path, Cmd};

pub fn ensure() -> Result<()> {
    if on_path("prometheus") && on_path("promtool") && on_path(ALERTMANAGER) {
        return Ok(());
    }
    crate::apt::ensure_bare(
        &["prometheus", ALERTMANAGER],
        "Prometheus and Alertmanager",
        "~1 min",
    )?;
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
