//! Child processes (celeriac, Flower, the no-op consumer) and what /proc says
//! about them.
//!
//! A child never outlives the bench: it is killed when its `Managed` drops
//! (also on an error or Ctrl-C unwinding the scenario), and the kernel kills it
//! if the bench itself dies (`PR_SET_PDEATHSIG`).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// CPU time (user + system, all threads) a process has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_stat_cpu(&stat, clock_ticks()).with_context(|| format!("parsing {path}"))
}

fn clock_ticks() -> u64 {
    Some(rustix::param::clock_ticks_per_second())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

fn parse_stat_cpu(stat: &str, ticks_per_sec: u64) -> Result<Duration> {
    // The command name (field 2) is in parentheses and may contain spaces,
    // so count fields from the last ')'.
    let rest = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .context("no ')' in stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields
        .get(11)
        .context("no utime")?
        .parse()
        .context("utime")?;
    let stime: u64 = fields
        .get(12)
        .context("no stime")?
        .parse()
        .context("stime")?;
    Ok(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks_per_sec as f64,
    ))
}

/// Resident set size in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS in {path}"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `command` run through util-linux's `setpriv --pdeathsig KILL`, so the
/// child dies with the bench even when the bench is killed outright and no
/// drop runs. `setpriv` execs the program in place: the pid stays the child's.
/// (Setting the signal ourselves would need `unsafe` `pre_exec`.)
fn killed_with_parent(command: &Command) -> Command {
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args(["--pdeathsig", "KILL", "--"])
        .arg(command.get_program())
        .args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// A child process with its output in a log file, killed on drop.
pub struct Managed {
    name: String,
    child: Child,
    log: PathBuf,
    lines: std::sync::mpsc::Receiver<String>,
    started: Instant,
}

impl Managed {
    /// Starts `command` with stdout and stderr appended to `log`. Lines of
    /// stdout are also handed to [`Managed::wait_for_line`].
    pub fn spawn(name: &str, command: Command, log: &Path) -> Result<Managed> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut log_file =
            File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let _ = writeln!(log_file, "$ {command:?}");
        let stderr = log_file.try_clone().context("cloning the log file")?;
        let mut command = killed_with_parent(&command);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        let stdout = child.stdout.take().context("child stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        // A reader thread keeps the pipe drained (a full pipe would stall the
        // child) and copies stdout into the log too.
        std::thread::spawn(move || {
            let mut log_file = log_file;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log_file, "{line}");
                let _ = tx.send(line);
            }
        });
        Ok(Managed {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
            lines,
            started,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    pub fn cpu_time(&self) -> Result<Duration> {
        cpu_time(self.pid())
    }

    pub fn rss_bytes(&self) -> Result<u64> {
        rss_bytes(self.pid())
    }

    /// Fails if the child has exited, naming its log.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("checking the child")? {
            bail!(
                "{} exited ({status}); see {}",
                self.name,
                self.log.display()
            );
        }
        Ok(())
    }

    /// The first stdout line for which `pick` returns something, within
    /// `timeout`.
    pub async fn wait_for_line<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                if let Some(found) = pick(&line) {
                    return Ok(found);
                }
            }
            self.ensure_running()?;
            if Instant::now() >= deadline {
                bail!(
                    "{} printed nothing expected within {timeout:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then SIGKILL after `grace`; reaps the child.
    pub fn stop(&mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // Our own unreaped child: its pid cannot have been reused.
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Managed {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

/// A free TCP port on 127.0.0.1 (for Flower, which cannot be told port 0).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(listener.local_addr().context("local address")?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_counts_user_and_system() {
        let stat = "1234 (tokio (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 100 1000 200";
        let cpu = parse_stat_cpu(stat, 100).expect("parses");
        assert_eq!(cpu, Duration::from_secs(3));
    }

    #[test]
    fn own_cpu_and_rss_are_readable() {
        let pid = std::process::id();
        assert!(cpu_time(pid).is_ok());
        assert!(rss_bytes(pid).expect("rss") > 0);
    }

    #[test]
    fn vm_rss_in_bytes() {
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t   2048 kB\n"),
            Some(2048 * 1024)
        );
    }
}
