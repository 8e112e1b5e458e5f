//! Scenario `broker-poll`: what one poll of queue statistics costs against
//! the real RabbitMQ management API when the vhost has many queues. A
//! throwaway vhost gets 3,000 and then 10,000 idle queues; celeriac's own
//! poller (`ManagementApi::poll`: the totals listing and the stats listing,
//! sent at once) is timed, and the totals request alone.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

use crate::mgmt::VHOST_PREFIX;
use crate::scenarios::Settings;

pub const QUEUE_COUNTS: [usize; 2] = [3_000, 10_000];
const POLLS: usize = 5;

pub struct PollResult {
    pub queues: usize,
    /// Queues the poll returned (all of them, nothing filtered).
    pub listed: usize,
    pub poll_median: Duration,
    pub poll_max: Duration,
    pub totals_median: Duration,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Declares the idle queues `q{from}`..`q{to}` (plain, non-exclusive).
async fn declare(url: &str, from: usize, to: usize) -> Result<()> {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .context("connecting to declare queues")?;
    let ch = conn.create_channel().await?;
    // One at a time: a round trip each, a few seconds for 10,000.
    for n in from..to {
        ch.queue_declare(
            format!("q{n:05}").as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("declaring a queue")?;
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}

pub async fn run(settings: &Settings) -> Result<Vec<PollResult>> {
    let vhost = format!("{VHOST_PREFIX}{}-broker-poll", std::process::id());
    settings.mgmt.delete_vhost(&vhost).await?;
    settings.mgmt.create_vhost(&vhost).await?;
    let outcome = run_in(settings, &vhost).await;
    if let Err(e) = settings.mgmt.delete_vhost(&vhost).await {
        eprintln!("warning: could not delete vhost {vhost}: {e:#}");
    }
    outcome
}

async fn run_in(settings: &Settings, vhost: &str) -> Result<Vec<PollResult>> {
    let url = format!("{}/{}", settings.amqp.trim_end_matches('/'), vhost);
    // celeriac derives the management API from the broker URL, as in
    // production (same host and credentials, port 15672).
    let api = celeriac::transport::amqp::ManagementApi::new(&url, None)?
        .context("no management API derived from the broker URL")?;
    let mut results = Vec::new();
    let mut declared = 0;
    for &n in &QUEUE_COUNTS {
        declare(&url, declared, n).await?;
        declared = n;
        // Let the new queues' stats reach the stats database once.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let (mut polls, mut totals) = (Vec::new(), Vec::new());
        let mut listed = 0;
        for _ in 0..POLLS {
            let t = Instant::now();
            listed = api.poll(&[]).await?.queues.len();
            polls.push(t.elapsed());
            let t = Instant::now();
            api.totals(&[]).await?;
            totals.push(t.elapsed());
        }
        results.push(PollResult {
            queues: n,
            listed,
            poll_max: *polls.iter().max().expect("polls"),
            poll_median: median(polls),
            totals_median: median(totals),
        });
    }
    Ok(results)
}

pub fn render(results: &[PollResult]) -> String {
    let mut s =
        String::from("\nqueue statistics poll (real RabbitMQ management API, idle queues)\n");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for r in results {
        let _ = writeln!(
            s,
            "  {} queues ({} listed): poll median {:.0} ms, max {:.0} ms; depth request alone {:.0} ms",
            r.queues,
            r.listed,
            ms(r.poll_median),
            ms(r.poll_max),
            ms(r.totals_median),
        );
    }
    s
}
