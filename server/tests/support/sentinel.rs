//! Real Redis servers and a real Redis Sentinel for tests: processes this
//! test starts on free ports (`redis-server`, `redis-server --sentinel`),
//! their configuration and data in the test's own directory, killed and
//! removed on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{dump_log, eventually};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(format!("redis://127.0.0.1:{port}").as_str())?
        .get_connection_with_timeout(Duration::from_secs(2))
}

/// A `redis-server` process of the test's own (`name` names its files).
pub struct Server {
    pub port: u16,
    process: Process,
}

impl Server {
    /// Starts a server with no persistence, a replica of `replica_of` when
    /// given; returns once it answers PING.
    pub fn start(dir: &Path, name: &str, replica_of: Option<u16>) -> Server {
        let port = free_port();
        let mut conf = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsave \"\"\nappendonly no\n",
            dir.display()
        );
        if let Some(master) = replica_of {
            conf.push_str(&format!("replicaof 127.0.0.1 {master}\n"));
        }
        let process = Process::start(dir, name, &conf, &[]);
        eventually(
            &format!("{name} to answer PING"),
            Duration::from_secs(20),
            || {
                let mut c = connect(port).ok()?;
                redis::cmd("PING").query::<String>(&mut c).ok()
            },
        );
        Server { port, process }
    }

    pub fn connection(&self) -> redis::Connection {
        connect(self.port).expect("connect to the test's Redis server")
    }

    /// SIGKILL, as a crashed host would go.
    pub fn kill(&mut self) {
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }

    /// Whether this server is a replica whose link to its master is up.
    pub fn replica_in_sync(&self) -> bool {
        let Ok(mut c) = connect(self.port) else {
            return false;
        };
        redis::cmd("INFO")
            .arg("replication")
            .query::<String>(&mut c)
            .is_ok_and(|info| info.contains("master_link_status:up"))
    }
}

/// A `redis-server --sentinel` process watching one master.
pub struct Sentinel {
    pub port: u16,
    master: String,
    password: Option<String>,
    process: Process,
}

impl Sentinel {
    /// Starts a Sentinel (quorum 1) that monitors `host:port` as `master`;
    /// returns once it reports that master up. `down_after_ms` is how long
    /// the master may be silent before Sentinel considers it down;
    /// `password`, the one clients of the Sentinel itself must give.
    pub fn start(
        dir: &Path,
        master: &str,
        (host, master_port): (&str, u16),
        down_after_ms: u64,
        password: Option<&str>,
    ) -> Sentinel {
        let port = free_port();
        let mut conf = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor {master} {host} {master_port} 1\n\
             sentinel down-after-milliseconds {master} {down_after_ms}\n\
             sentinel failover-timeout {master} 10000\n",
            dir.display()
        );
        if let Some(password) = password {
            conf.push_str(&format!("requirepass {password}\n"));
        }
        let process = Process::start(dir, &format!("sentinel-{master}"), &conf, &["--sentinel"]);
        let sentinel = Sentinel {
            port,
            master: master.to_string(),
            password: password.map(str::to_string),
            process,
        };
        eventually(
            &format!("Sentinel to report `{master}` up"),
            Duration::from_secs(20),
            || {
                let flags = sentinel.master_state()?.remove("flags")?;
                (flags == "master").then_some(())
            },
        );
        sentinel
    }

    /// `SENTINEL MASTER <name>` as key/value pairs.
    pub fn master_state(&self) -> Option<std::collections::HashMap<String, String>> {
        let mut c = connect(self.port).ok()?;
        if let Some(password) = &self.password {
            redis::cmd("AUTH").arg(password).query::<()>(&mut c).ok()?;
        }
        redis::cmd("SENTINEL")
            .arg("MASTER")
            .arg(&self.master)
            .query(&mut c)
            .ok()
    }

    /// How many replicas of the master Sentinel knows.
    pub fn replicas(&self) -> usize {
        self.master_state()
            .and_then(|s| s.get("num-slaves")?.parse().ok())
            .unwrap_or(0)
    }

    /// The master's port as Sentinel names it now.
    pub fn master_port(&self) -> Option<u16> {
        self.master_state()?.get("port")?.parse().ok()
    }
}

/// A child process with its config file, both gone on drop.
struct Process {
    child: Child,
    conf: PathBuf,
    log: PathBuf,
}

impl Process {
    fn start(dir: &Path, name: &str, conf_text: &str, args: &[&str]) -> Process {
        let conf = dir.join(format!("{name}.conf"));
        std::fs::write(&conf, conf_text).expect("write the Redis config");
        let log = dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("create the Redis log");
        let err = out.try_clone().expect("clone the log handle");
        let child = Command::new("redis-server")
            .arg(&conf)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start redis-server (is it installed?)");
        Process { child, conf, log }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            dump_log(&self.conf.display().to_string(), &self.log);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.conf);
    }
}
