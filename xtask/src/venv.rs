//! The Python venv with pinned Celery (and Flower, for the bench and the
//! side-by-side test), kept outside the clone so fresh clones and `git clean`
//! do not pay for it again.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::cmd::{step, Cmd};

/// A pinned PyPI distribution: (name, version).
pub type Pin = (&'static str, &'static str);

/// The Celery the integration tests and docs/celery-protocol.md were
/// verified with.
pub const CELERY: Pin = ("celery", "5.7.0");
/// The Flower the bench and `server/tests/flower_compat.rs` compare
/// against (bench/README.md).
pub const FLOWER: Pin = ("flower", "2.2.0");
/// redis-py: kombu's Redis transport (workers on a Redis broker) and
/// Celery's Redis result backend (the Flower task API tests).
pub const REDIS: Pin = ("redis", "6.4.0");
/// Celery's database result backend on PostgreSQL (the same tests).
pub const SQLALCHEMY: Pin = ("SQLAlchemy", "2.0.41");
pub const PSYCOPG2: Pin = ("psycopg2-binary", "2.9.10");
/// The SMTP server the email notifier test delivers to.
pub const AIOSMTPD: Pin = ("aiosmtpd", "1.4.6");
/// kombu's Redis transport imports `packaging` to check the redis-py
/// version (6.1 or later for kombu 5.7).
pub const PACKAGING: Pin = ("packaging", "25.0");

/// Written once `python -m venv` has finished, so an interrupted creation is
/// redone instead of leaving a venv without pip.
const CREATED_MARKER: &str = ".celeriac-venv-created";

pub fn dir() -> Result<PathBuf> {
    let cache = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home =
                std::env::var_os("HOME").context("neither XDG_CACHE_HOME nor HOME is set")?;
            PathBuf::from(home).join(".cache")
        }
    };
    Ok(cache.join("celeriac").join("venv"))
}

/// Makes sure the venv exists with every pin installed at its exact version;
/// returns its python.
pub fn ensure(pins: &[Pin]) -> Result<PathBuf> {
    let dir = dir()?;
    let python = dir.join("bin").join("python");
    let usable =
        dir.join(CREATED_MARKER).is_file() && Cmd::new(&python).args(["-c", "pass"]).succeeds();
    if !usable {
        create(&dir)?;
    }

    let missing = missing(&python, pins)?;
    if missing.is_empty() {
        return Ok(python);
    }
    let specs: Vec<String> = missing.iter().map(|(n, v)| format!("{n}=={v}")).collect();
    step(&format!(
        "installing Python venv with {} (first run takes ~1 min)",
        specs.join(", ")
    ));
    Cmd::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
        ])
        .args(&specs)
        .run()
        .with_context(|| {
            format!(
                "pip could not install {} into {}",
                specs.join(" "),
                dir.display()
            )
        })?;

    let still = missing_after_install(&python, pins)?;
    if !still.is_empty() {
        bail!("after pip install, {still:?} are still not at the pinned versions");
    }
    Ok(python)
}

fn create(dir: &std::path::Path) -> Result<()> {
    let base = base_python()?;
    step(&format!(
        "creating a Python venv at {} (with {base})",
        dir.display()
    ));
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("could not remove the broken venv at {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    Cmd::new(&base)
        .args([std::ffi::OsStr::new("-m"), "venv".as_ref(), dir.as_os_str()])
        .run()
        .context("`python3 -m venv` failed (on Debian, `apt-get install python3-venv`)")?;
    std::fs::write(dir.join(CREATED_MARKER), base)?;
    Ok(())
}

/// The interpreter to build the venv from: `python3`, at least 3.9 (Celery
/// 5.7's floor).
fn base_python() -> Result<String> {
    let version = Cmd::new("python3")
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .read()
        .context("python3 is needed to run Celery workers in the tests")?;
    let version = version.trim();
    let ok = version
        .split_once('.')
        .and_then(|(major, minor)| Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?)))
        .is_some_and(|v| v >= (3, 9));
    if !ok {
        bail!("python3 is {version}; Celery 5.7 needs Python 3.9 or newer");
    }
    Ok("python3".to_string())
}

/// The pins whose installed version differs (or that are not installed).
fn missing(python: &std::path::Path, pins: &[Pin]) -> Result<Vec<Pin>> {
    let script = "import sys, importlib.metadata as m\n\
                  for name in sys.argv[1:]:\n\
                  \ttry: print(name, m.version(name))\n\
                  \texcept m.PackageNotFoundError: print(name, '-')\n";
    let out = Cmd::new(python)
        .args(["-c", script])
        .args(pins.iter().map(|(n, _)| *n))
        .read()?;
    Ok(pins
        .iter()
        .copied()
        .filter(|(name, version)| {
            !out.lines()
                .any(|line| line.split_once(' ') == Some((name, version)))
        })
        .collect())
}

fn missing_after_install(python: &std::path::Path, pins: &[Pin]) -> Result<Vec<String>> {
    Ok(missing(python, pins)?
        .into_iter()
        .map(|(n, v)| format!("{n}=={v}"))
        .collect())
}
