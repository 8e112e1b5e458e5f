//! Throwaway PostgreSQL databases for the history figures: made with
//! `psql` on the server `--postgres` names, dropped with `DROP DATABASE …
//! WITH (FORCE)` when done (also when the scenario fails or is
//! interrupted), and those of a bench that was killed are dropped by the
//! next run.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// Every database the bench makes is `celeriac_bench_<pid>_<what>`.
pub const DB_PREFIX: &str = "celeriac_bench_";

/// A PostgreSQL server, by a URL without a database (any database in it is
/// replaced).
#[derive(Clone, Debug)]
pub struct Server {
    url: String,
}

impl Server {
    pub fn new(url: &str) -> Server {
        Server {
            url: url.to_owned(),
        }
    }

    /// The URL without its password, for messages.
    pub fn describe(&self) -> String {
        celeriac::mask::mask_password(&self.url)
    }

    /// `sql` run by psql in the maintenance database `postgres`: its
    /// unaligned, tuples-only output.
    fn psql(&self, sql: &str) -> Result<String> {
        let output = Command::new("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(with_database(&self.url, "postgres"))
            .args(["-c", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .context("running psql")?;
        if !output.status.success() {
            bail!(
                "psql on {}: {}",
                self.describe(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The server's version, if psql is installed and reaches it.
    pub fn check(&self) -> Result<String> {
        self.psql("SHOW server_version")
    }

    /// A fresh, empty database `celeriac_bench_<pid>_<what>`.
    pub fn create(&self, what: &str) -> Result<Database> {
        let name = format!("{DB_PREFIX}{}_{what}", std::process::id());
        // A leftover of an earlier failure in this same process.
        self.psql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))?;
        self.psql(&format!("CREATE DATABASE \"{name}\""))?;
        Ok(Database {
            server: self.clone(),
            url: with_database(&self.url, &name),
            name,
        })
    }

    /// Drops the databases of benches that are no longer running.
    pub fn drop_stale(&self) -> Result<()> {
        let names = self.psql(&format!(
            "SELECT datname FROM pg_database WHERE datname LIKE '{DB_PREFIX}%'"
        ))?;
        for name in names.lines().map(str::trim) {
            let Some(pid) = name
                .strip_prefix(DB_PREFIX)
                .and_then(|rest| rest.split('_').next())
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                self.psql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))?;
            }
        }
        Ok(())
    }
}

/// A database made by [`Server::create`]; dropped when this drops.
pub struct Database {
    server: Server,
    name: String,
    /// Its connection URL, for `--db`.
    pub url: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = self.server.psql(&drop) {
            eprintln!("warning: could not drop database {}: {e:#}", self.name);
        }
    }
}

/// CPU time (user + system) used so far by every process of this box
/// named `postgres` (the server, its background workers and the
/// connections' backends); zero when there is none. For a server on
/// another box this says nothing.
pub fn server_cpu() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .filter_map(|pid| crate::procs::cpu_time(pid).ok())
        .sum()
}

/// `url` with its database (path) replaced by `db`, keeping its
/// parameters.
pub fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let params = tail.find('?').map_or("", |i| &tail[i..]);
    format!("{scheme}://{authority}/{db}{params}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_replaced_and_parameters_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/old?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h/", "x"), "postgres://h/x");
        assert_eq!(
            with_database("postgres://h?application_name=b", "x"),
            "postgres://h/x?application_name=b"
        );
    }
}
