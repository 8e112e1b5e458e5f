//! The local RabbitMQ (Debian's package, guest/guest): started if it is down,
//! with the management plugin the tests use to create a vhost per test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cmd::{on_path, step, Cmd};

pub const AMQP_PORT: u16 = 5672;
pub const MGMT_PORT: u16 = 15672;
/// A cold start of RabbitMQ 3.10 on two cores takes 5–15 s; leave room.
const START_TIMEOUT: Duration = Duration::from_secs(120);

fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// Debian installs the RabbitMQ commands in /usr/sbin, which a non-login
/// shell's PATH may lack.
fn tool(name: &str) -> Result<String> {
    if on_path(name) {
        return Ok(name.to_string());
    }
    let sbin = format!("/usr/sbin/{name}");
    if std::path::Path::new(&sbin).is_file() {
        return Ok(sbin);
    }
    bail!("`{name}` not found: install RabbitMQ (`apt-get install rabbitmq-server`)")
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    bail!("{what} did not come up within {} s", timeout.as_secs())
}

pub fn ensure_running() -> Result<()> {
    if port_open(AMQP_PORT) {
        return Ok(());
    }
    let server = tool("rabbitmq-server")?;
    step("starting RabbitMQ (rabbitmq-server -detached)");
    // `-detached` returns before the node is up; the port tells when it is.
    Cmd::new(&server).args(["-detached"]).run()?;
    wait_for(
        &format!("RabbitMQ on 127.0.0.1:{AMQP_PORT}"),
        START_TIMEOUT,
        || port_open(AMQP_PORT),
    )
    .context("see /var/log/rabbitmq/ for the broker's own log")
}

pub fn ensure_management() -> Result<()> {
    if management_answers() {
        return Ok(());
    }
    if !port_open(MGMT_PORT) {
        let plugins = tool("rabbitmq-plugins")?;
        step(
            "enabling the RabbitMQ management plugin (rabbitmq-plugins enable rabbitmq_management)",
        );
        Cmd::new(&plugins)
            .args(["enable", "rabbitmq_management"])
            .read()?;
    }
    wait_for(
        &format!("the RabbitMQ management API on http://127.0.0.1:{MGMT_PORT}/api/overview"),
        START_TIMEOUT,
        management_answers,
    )
}

fn management_answers() -> bool {
    http_status(MGMT_PORT, "/api/overview").is_ok_and(|s| s == 200)
}

/// A GET with guest/guest basic auth, by hand: one request at start-up does
/// not justify an HTTP client dependency.
fn http_status(port: u16, path: &str) -> Result<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    // base64("guest:guest")
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("not an HTTP answer")?;
    Ok(status)
}
