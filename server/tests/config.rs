//! The command line, black box: `--help` works, and a bad flag or value
//! stops celeriac at start-up with a message naming it. No broker needed.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs celeriac with `args`; it must exit by itself within 10 s (a bad
/// config that is silently accepted would start serving instead).
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_celeriac"))
        .args(args)
        // Only the flags under test: no settings leak in from the caller.
        .env_remove("CELERY_BROKER_URL")
        .env_remove("CELERIAC_CONFIG")
        .env_remove("CELERIAC_PORT")
        .env_remove("CELERIAC_REDIS_MASTER_NAME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start celeriac");
    let start = Instant::now();
    while child.try_wait().expect("wait for celeriac").is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "celeriac {args:?} did not exit within 10 s; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect output")
}

fn assert_rejected(args: &[&str], must_name: &[&str]) {
    let out = run(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "celeriac {args:?} exited successfully; stderr:\n{stderr}"
    );
    for name in must_name {
        assert!(
            stderr.contains(name),
            "celeriac {args:?}: the error does not name {name:?}:\n{stderr}"
        );
    }
}

#[test]
fn help_lists_the_flags() {
    let out = run(&["--help"]);
    assert!(out.status.success(), "--help failed");
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--broker",
        "--port",
        "--address",
        "--max-tasks",
        "--events-queue",
        "--events-ttl",
        "--redis-master-name",
        "--redis-global-keyprefix",
        "--config",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
}

#[test]
fn version_prints_the_name() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("celeriac"));
}

#[test]
fn bad_values_name_their_flag() {
    assert_rejected(&["--port", "nope"], &["--port", "nope"]);
    assert_rejected(&["--port", "70000"], &["--port"]);
    assert_rejected(&["--max-tasks", "0"], &["--max-tasks"]);
    assert_rejected(&["--address", "not-an-ip"], &["--address"]);
    assert_rejected(&["--enable-events", "maybe"], &["--enable-events"]);
    assert_rejected(&["--events-ttl", "0"], &["--events-ttl"]);
    assert_rejected(&["--events-ttl=-1"], &["--events-ttl"]);
    assert_rejected(&["--stuck-after", "0"], &["--stuck-after"]);
    assert_rejected(&["--stuck-after", "soon"], &["--stuck-after", "soon"]);
    assert_rejected(
        &["--max-stats-task-names", "1"],
        &["--max-stats-task-names"],
    );
}

#[test]
fn a_sentinel_broker_without_a_master_name_is_refused_with_its_password_masked() {
    let url = "sentinel://:hunter2@127.0.0.1:1/0;sentinel://:hunter3@127.0.0.1:2/0";
    let out = run(&["--broker", url, "--port", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--redis-master-name") && stderr.contains("127.0.0.1:2"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("hunter3"),
        "{stderr}"
    );
}

#[test]
fn unknown_flags_are_named() {
    assert_rejected(&["--no-such-flag"], &["--no-such-flag"]);
}

#[test]
fn bad_config_files_name_the_file_and_key() {
    let dir = std::env::temp_dir().join(format!("celeriac-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("celeriac.toml");
    let p = path.to_str().expect("utf-8 temp path");

    std::fs::write(&path, "portt = 1\n").unwrap();
    assert_rejected(&["--config", p], &["portt", "celeriac.toml"]);
    std::fs::write(&path, "max_tasks = \"many\"\n").unwrap();
    assert_rejected(&["--config", p], &["max_tasks"]);
    std::fs::write(&path, "this is not toml").unwrap();
    assert_rejected(&["--config", p], &["celeriac.toml"]);
    assert_rejected(
        &["--config", "/nonexistent/celeriac.toml"],
        &["celeriac.toml"],
    );

    std::fs::remove_dir_all(&dir).ok();
}

/// celeriac started with its stderr in a file (not a terminal), against a
/// broker port where nothing listens so it logs a warning, then stopped.
fn stderr_of_a_short_run(extra: &[&str]) -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "log-format-{}-{}",
        std::process::id(),
        extra.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_celeriac"))
        .args([
            "--broker",
            "amqp://guest:guest@127.0.0.1:1//",
            "--port",
            "0",
        ])
        .args(["--db", "none"])
        .args(extra)
        .env_remove("CELERIAC_LOG")
        .env_remove("CELERIAC_LOG_FORMAT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start celeriac");
    let start = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("retrying") || start.elapsed() > Duration::from_secs(30) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    text
}

#[test]
fn logs_to_a_file_carry_no_colour_codes_and_json_lines_parse() {
    let text = stderr_of_a_short_run(&[]);
    assert!(text.contains("retrying"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escape codes in a file:\n{text}"
    );

    let text = stderr_of_a_short_run(&["--log-format", "json"]);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("retrying") && l.contains("\"level\":\"WARN\"")),
        "{text}"
    );
    assert_rejected(&["--log-format", "xml"], &["--log-format", "xml"]);
}
