//! Redis databases for tests: each Redis test holds one of databases 1 to
//! 15 through a lock key in database 0, so parallel tests (threads or
//! nextest processes) never share one.

use std::time::{Duration, Instant};

use super::settings;

const LOCK_PREFIX: &str = "celeriac-test:db:";
/// A test that dies without its drop frees its database after this long.
const LOCK_SECS: u64 = 900;

pub fn connect(db: u32) -> redis::Connection {
    let url = format!("{}/{db}", settings().redis);
    redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("cannot connect to Redis at {url}: {e}"))
}

/// Takes a free database, waiting up to two minutes for one.
pub fn claim_db(owner: &str) -> u32 {
    let mut conn = connect(0);
    let started = Instant::now();
    loop {
        for db in 1..=15u32 {
            let taken: Option<String> = redis::cmd("SET")
                .arg(format!("{LOCK_PREFIX}{db}"))
                .arg(owner)
                .arg("NX")
                .arg("EX")
                .arg(LOCK_SECS)
                .query(&mut conn)
                .expect("SET NX on Redis");
            if taken.is_some() {
                return db;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no free Redis database for tests after 2 minutes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn release_db(db: u32, owner: &str) {
    let mut conn = connect(0);
    let key = format!("{LOCK_PREFIX}{db}");
    let holder: Option<String> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap_or(None);
    if holder.as_deref() == Some(owner) {
        let _: Result<(), _> = redis::cmd("DEL").arg(&key).query(&mut conn);
    }
}

pub fn flush(db: u32) {
    let _: () = redis::cmd("FLUSHDB")
        .query(&mut connect(db))
        .expect("FLUSHDB");
}

/// Kills every client connected to `db` but the one asking; returns how
/// many.
pub fn kill_clients(db: u32) -> usize {
    let mut conn = connect(db);
    let me: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query(&mut conn)
        .expect("CLIENT ID");
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut conn)
        .expect("CLIENT LIST");
    let mut killed = 0;
    for line in list.lines() {
        let field = |name: &str| {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
        };
        let (Some(id), Some(client_db)) = (field("id"), field("db")) else {
            continue;
        };
        if client_db != db.to_string() || id == me.to_string() {
            continue;
        }
        let n: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(&id)
            .query(&mut conn)
            .unwrap_or(0);
        killed += n as usize;
    }
    killed
}
