//! A dead or hanging notifier never delays another one, nor the caller:
//! each notifier has its own queue and task. Real TCP endpoints: a closed
//! port (connection refused) and a server that accepts and never answers.

mod notify_common;

use std::time::{Duration, Instant};

use alerts::notify::{DispatchOptions, Dispatcher};
use notify_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_and_hanging_notifiers_do_not_delay_a_healthy_one() {
    let healthy = Receiver::start().await;
    let configs = notifiers(&format!(
        "- name: dead\n  webhook: {{url: {}}}\n\
         - name: hanging\n  webhook: {{url: {}, timeout: 2s}}\n\
         - name: healthy\n  webhook: {{url: {}}}\n",
        dead_url().await,
        hanging_url().await,
        healthy.url
    ));
    let d = Dispatcher::new(&configs, fast_options());

    // The broken ones get theirs first, as an engine looping over a rule's
    // `notify:` list would do.
    let sent_at = Instant::now();
    for name in ["dead", "hanging", "healthy"] {
        d.send(name, firing());
    }
    assert!(
        sent_at.elapsed() < Duration::from_millis(20),
        "send() must not wait for delivery: {:?}",
        sent_at.elapsed()
    );
    let got = healthy.wait_for(1, Duration::from_secs(5)).await;
    let latency = got[0].at - sent_at;
    println!("healthy notifier delivered after {latency:?}");
    // The hanging one's first attempt alone takes its 2 s timeout.
    assert!(
        latency < Duration::from_secs(1),
        "healthy delivery took {latency:?}"
    );

    // Both broken ones are counted as failed once their retries run out
    // (3 attempts: the hanging one needs 3 x 2 s timeouts plus backoff).
    let dead = wait_stats(&d, "dead", Duration::from_secs(5), |s| s.failed == 1).await;
    assert!(
        dead.last_error
            .as_deref()
            .unwrap()
            .contains("request to http://127.0.0.1"),
        "{dead:?}"
    );
    let hanging = wait_stats(&d, "hanging", Duration::from_secs(15), |s| s.failed == 1).await;
    let err = hanging.last_error.as_deref().unwrap();
    assert!(
        err.starts_with("no answer from http://127.0.0.1") && err.ends_with("within 2s"),
        "{hanging:?}"
    );
    assert_eq!((dead.sent, hanging.sent), (0, 0));
    assert_eq!(stats(&d, "healthy").sent, 1);
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_instead_of_blocking() {
    let configs = notifiers(&format!(
        "- name: hanging\n  webhook: {{url: {}}}\n",
        hanging_url().await
    ));
    let options = DispatchOptions {
        queue_capacity: 2,
        timeout: Duration::from_secs(30),
        ..fast_options()
    };
    let d = Dispatcher::new(&configs, options);

    let start = Instant::now();
    for _ in 0..10 {
        d.send("hanging", firing());
    }
    assert!(
        start.elapsed() < Duration::from_millis(20),
        "{:?}",
        start.elapsed()
    );
    // 2 wait in the queue, at most 1 is in flight, the rest are dropped.
    let s = stats(&d, "hanging");
    assert!((7..=8).contains(&s.dropped), "{s:?}");
    assert_eq!((s.sent, s.failed), (0, 0));
}

#[tokio::test]
async fn an_unknown_notifier_name_is_ignored() {
    let rx = Receiver::start().await;
    let configs = notifiers(&format!("- name: ops\n  webhook: {{url: {}}}\n", rx.url));
    let d = Dispatcher::new(&configs, fast_options());
    d.send("nope", firing());
    d.send("ops", firing());
    rx.wait_for(1, Duration::from_secs(5)).await;
    let s = stats(&d, "ops");
    assert_eq!((s.sent, s.dropped), (1, 0));
    assert_eq!(d.stats().len(), 1);
}
