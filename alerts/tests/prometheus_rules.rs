//! The Prometheus rules shipped in `alerts/prometheus/` are valid and behave
//! as their unit tests say: `promtool check rules` and `promtool test rules`
//! from Debian's `prometheus` package (`cargo xtask test` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("prometheus")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(rules_dir())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): `cargo xtask test` installs Debian's `prometheus`")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {} failed:\n{text}",
        args.join(" ")
    );
    text
}

#[test]
fn rules_pass_promtool_check() {
    let text = promtool(&["check", "rules", "celeriac-rules.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn rules_pass_their_unit_tests() {
    let text = promtool(&["test", "rules", "celeriac-rules.test.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Every alert has what an on-call person needs: `for`, a severity and a
/// runbook, and a unit test that names it.
#[test]
fn every_alert_has_for_severity_runbook_and_a_test() {
    let rules = std::fs::read_to_string(rules_dir().join("celeriac-rules.yml")).unwrap();
    let tests = std::fs::read_to_string(rules_dir().join("celeriac-rules.test.yml")).unwrap();
    let blocks: Vec<&str> = rules.split("- alert: ").skip(1).collect();
    assert!(
        blocks.len() >= 8,
        "expected the full rule set, got {}",
        blocks.len()
    );
    for block in blocks {
        let name = block.lines().next().unwrap().trim();
        for needle in ["for: ", "severity: ", "runbook: ", "summary: "] {
            assert!(block.contains(needle), "alert {name} lacks `{needle}`");
        }
        assert!(
            tests.contains(&format!("alertname: {name}\n")),
            "alert {name} has no promtool unit test"
        );
    }
}
