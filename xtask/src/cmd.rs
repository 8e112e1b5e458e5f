//! Running external programs with errors that say what failed and how to fix it.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Announces a long step, so a silent minute is never a mystery.
pub fn step(what: &str) {
    println!("==> {what}");
}

pub struct Cmd {
    inner: Command,
}

/// A cargo invocation in the workspace root, with the same cargo that runs us.
pub fn cargo(args: &[&str]) -> Cmd {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Cmd::new(cargo);
    c.inner.args(args).current_dir(crate::root());
    c
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Cmd {
        Cmd {
            inner: Command::new(program),
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, vars: &[(K, V)]) -> Cmd {
        for (k, v) in vars {
            self.inner.env(k, v);
        }
        self
    }

    fn describe(&self) -> String {
        let mut s = self.inner.get_program().to_string_lossy().into_owned();
        for a in self.inner.get_args() {
            s.push(' ');
            s.push_str(&a.to_string_lossy());
        }
        s
    }

    /// Runs with inherited stdio; fails unless it exits 0.
    pub fn run(mut self) -> Result<()> {
        let status = self
            .inner
            .status()
            .with_context(|| format!("could not start `{}`", self.describe()))?;
        if !status.success() {
            bail!("`{}` failed ({status})", self.describe());
        }
        Ok(())
    }

    /// Runs with stdout and stderr streamed to ours as they come and also
    /// captured, for what only the output says (test totals). Returns whether
    /// it exited 0, and the output (stdout, then stderr).
    pub fn tee(mut self) -> Result<(bool, String)> {
        let mut child = self
            .inner
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start `{}`", self.describe()))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let stderr = child.stderr.take().context("child stderr")?;
        // Both pipes drain at once, or a full one would stall the child.
        let errors = std::thread::spawn(move || copy_lines(stderr, std::io::stderr()));
        let mut output = copy_lines(stdout, std::io::stdout());
        output.push_str(&errors.join().unwrap_or_default());
        let status = child
            .wait()
            .with_context(|| format!("waiting for `{}`", self.describe()))?;
        Ok((status.success(), output))
    }

    /// Runs quietly and returns stdout; fails with the captured stderr.
    pub fn read(mut self) -> Result<String> {
        let out = self
            .inner
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("could not start `{}`", self.describe()))?;
        if !out.status.success() {
            bail!(
                "`{}` failed ({}):\n{}{}",
                self.describe(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs quietly; true when it could start and exited 0.
    pub fn succeeds(mut self) -> bool {
        self.inner
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// Copies `from` to `to` line by line as it arrives; returns what it copied.
fn copy_lines(from: impl Read, mut to: impl Write) -> String {
    let mut reader = BufReader::new(from);
    let (mut all, mut line) = (String::new(), Vec::new());
    while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
        let _ = to.write_all(&line);
        let _ = to.flush();
        all.push_str(&String::from_utf8_lossy(&line));
        line.clear();
    }
    all
}

/// Whether `cargo nextest` is installed (it runs each test in its own process,
/// two at a time on this machine, which suits the integration tests).
pub fn has_nextest() -> bool {
    cargo(&["nextest", "--version"]).succeeds()
}

/// Whether a program is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
