//! `cargo xtask <command>`: build, run, test and bench celeriac on a fresh
//! machine. Every step that installs or starts something first checks whether
//! it is already there, so running a command twice does the work once.

mod apt; // Debian packages: chromium, rustc-web, prometheus
mod cmd;
mod frontend; // the dashboard build
mod prometheus; // the Grafana panel test runs the real Prometheus
mod rabbit;
mod tally; // the `N passed, M failed` line `test` ends with
mod venv;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::cmd::{cargo, step};
use crate::tally::Tally;

const USAGE: &str = "\
usage: cargo xtask <command> [args]

commands:
  build               build celeriac (release) at target/release/celeriac
  run [-- ARGS]       start RabbitMQ if needed, build, and run celeriac on
                      http://127.0.0.1:5555 against the local broker
  test                install what the tests need, then run fmt, clippy and
                      every test of the workspace
  bench [-- ARGS]     run the benchmark (cargo run --release -p bench -- ARGS)
";

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let command = args.next();
    let rest: Vec<String> = args.collect();
    // `cargo xtask run -- --log debug` arrives with the `--` still in place.
    let rest = match rest.first().map(String::as_str) {
        Some("--") => rest[1..].to_vec(),
        _ => rest,
    };
    match command.as_deref() {
        Some("build") => build(),
        Some("run") => run_celeriac(&rest),
        Some("test") => test(),
        Some("bench") => bench(&rest),
        Some("help" | "-h" | "--help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

/// The workspace root (this crate lives in `<root>/xtask`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

fn build() -> Result<()> {
    build_frontend()?;
    step("building celeriac (release)");
    cargo(&["build", "--release", "-p", "celeriac"]).run()
}

/// The Leptos dashboard, compiled to WASM and embedded by the server
/// build: see `frontend.rs`.
fn build_frontend() -> Result<()> {
    frontend::build()
}

fn release_binary() -> PathBuf {
    target_dir().join("release").join("celeriac")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn run_celeriac(extra: &[String]) -> Result<()> {
    rabbit::ensure_running()?;
    build()?;
    let binary = release_binary();
    let mut command = std::process::Command::new(&binary);
    command
        .args([
            "--broker",
            "amqp://guest:guest@127.0.0.1:5672//",
            "--port",
            "5555",
        ])
        .args(extra);
    println!("==> starting {} (Ctrl-C stops it)", binary.display());
    exec(command)
}

#[cfg(unix)]
fn exec(mut command: std::process::Command) -> Result<()> {
    use std::os::unix::process::CommandExt;
    // Replacing the process hands Ctrl-C and the exit code straight to celeriac.
    let err = command.exec();
    bail!("could not start {:?}: {err}", command.get_program())
}

#[cfg(not(unix))]
fn exec(mut command: std::process::Command) -> Result<()> {
    let status = command.status()?;
    std::process::exit(status.code().unwrap_or(1))
}

/// Everything CI checks. The last line is always the totals, `N passed,
/// M failed`, also when a step before the tests fails (`0 passed, 1 failed`).
fn test() -> Result<()> {
    let started = std::time::Instant::now();
    let totals = match prepare_and_check().and_then(|env| run_tests(&env)) {
        Ok(totals) => totals,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            println!("{}", Tally::FAILED_STEP);
            std::process::exit(1);
        }
    };
    if totals.failed == 0 {
        println!(
            "==> all checks passed in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    println!("{totals}");
    if totals.failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

/// Installs and starts what the tests need, then fmt and clippy. Returns the
/// environment the tests run with.
fn prepare_and_check() -> Result<Vec<(&'static str, String)>> {
    rabbit::ensure_running()?;
    rabbit::ensure_management()?;
    let python = venv::ensure(&[
        venv::CELERY,
        venv::AIOSMTPD, // the email notifier test
        venv::REDIS,    // workers on a Redis broker, Celery's Redis result backend
        venv::PACKAGING,
        venv::SQLALCHEMY, // Celery's database result backend
        venv::PSYCOPG2,
        venv::FLOWER, // tests/flower_compat.rs runs Flower beside celeriac
    ])?;
    prometheus::ensure()?; // metrics / Grafana tests, Alertmanager for the notifier tests
                           // Dashboard: built first, so clippy and the tests embed it; the browser
                           // test drives Debian's Chromium with playwright-core from these tools.
    build_frontend()?;
    frontend::ensure_chromium()?;
    let node_modules = frontend::ensure_npm_tools()?.join("node_modules");

    step("checking formatting (cargo fmt --all --check)");
    cargo(&["fmt", "--all", "--check"])
        .run()
        .map_err(|e| e.context("code is not formatted: run `cargo fmt --all`"))?;

    step("linting (cargo clippy --workspace --all-targets -- -D warnings)");
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])
    .run()?;

    Ok(vec![
        ("CELERIAC_TEST_PYTHON", python.display().to_string()),
        (
            "CELERIAC_TEST_AMQP",
            format!("amqp://guest:guest@127.0.0.1:{}", rabbit::AMQP_PORT),
        ),
        (
            "CELERIAC_TEST_MGMT",
            format!("http://guest:guest@127.0.0.1:{}", rabbit::MGMT_PORT),
        ),
        // The notifier test posts to a real Alertmanager
        (
            "CELERIAC_TEST_ALERTMANAGER",
            prometheus::ALERTMANAGER.to_string(),
        ),
        // The dashboard's browser test.
        (
            "CELERIAC_TEST_NODE_MODULES",
            node_modules.display().to_string(),
        ),
    ])
}

/// Every test of the workspace, run to the end even when some fail, with
/// the totals their runners reported.
fn run_tests(env: &[(&str, String)]) -> Result<Tally> {
    let mut totals = Tally::default();
    if cmd::has_nextest() {
        step("running every test (cargo nextest run --workspace)");
        let config = format!("xtask:{}", root().join("xtask/nextest.toml").display());
        totals += tally::run(
            cargo(&["nextest", "run", "--workspace", "--no-fail-fast"])
                .args(["--tool-config-file", &config])
                .envs(env),
        )?;
        // nextest does not run doctests.
        step("running doctests (cargo test --workspace --doc)");
        totals += tally::run(cargo(&["test", "--workspace", "--doc"]).envs(env))?;
    } else {
        step("running every test (cargo test --workspace)");
        totals += tally::run(cargo(&["test", "--workspace", "--no-fail-fast"]).envs(env))?;
    }
    Ok(totals)
}

fn bench(args: &[String]) -> Result<()> {
    rabbit::ensure_running()?;
    rabbit::ensure_management()?;
    let python = venv::ensure(&[venv::CELERY, venv::FLOWER])?;
    // The bench runs target/release/celeriac unless told otherwise.
    build()?;
    // The dashboard scenario: playwright-core drives Debian's Chromium.
    frontend::ensure_chromium()?;
    let node_modules = frontend::ensure_npm_tools()?.join("node_modules");
    step("running the benchmark (cargo run --release -p bench)");
    let mut all = vec!["run", "--release", "-p", "bench", "--"];
    all.extend(args.iter().map(String::as_str));
    cargo(&all)
        .envs(&[
            ("CELERIAC_BENCH_PYTHON", python.display().to_string()),
            (
                "CELERIAC_BENCH_NODE_MODULES",
                node_modules.display().to_string(),
            ),
        ])
        .run()
}
