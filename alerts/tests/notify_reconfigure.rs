//! A rule file reload hands the dispatcher a new notifier list: unchanged
//! notifiers keep their queue and counters, changed ones switch destination
//! and keep their counters, removed ones go away.

mod notify_common;

use std::time::Duration;

use alerts::notify::Dispatcher;
use notify_common::*;

#[tokio::test]
async fn reload_keeps_unchanged_notifiers_and_switches_changed_ones() {
    let a = Receiver::start().await;
    let b = Receiver::start().await;
    let chat = Receiver::start().await;
    let mut d = Dispatcher::new(
        &notifiers(&format!(
            "- name: ops\n  webhook: {{url: {}}}\n- name: chat\n  slack: {{url: {}}}\n",
            a.url, chat.url
        )),
        fast_options(),
    );
    d.send("ops", firing());
    a.wait_for(1, Duration::from_secs(5)).await;
    wait_stats(&d, "ops", Duration::from_secs(2), |s| s.sent == 1).await;

    // Same `ops`, `chat` removed, `extra` added.
    d.reconfigure(&notifiers(&format!(
        "- name: ops\n  webhook: {{url: {}}}\n- name: extra\n  webhook: {{url: {}}}\n",
        a.url, b.url
    )));
    assert_eq!(d.names().collect::<Vec<_>>(), ["ops", "extra"]);
    assert_eq!(
        stats(&d, "ops").sent,
        1,
        "unchanged notifier lost its counters"
    );
    assert_eq!(stats(&d, "extra").sent, 0);
    d.send("chat", firing()); // gone: logged and dropped
    d.send("ops", firing());
    a.wait_for(2, Duration::from_secs(5)).await;

    // `ops` now points elsewhere: new deliveries go there, counts carry on.
    d.reconfigure(&notifiers(&format!(
        "- name: ops\n  webhook: {{url: {}}}\n",
        b.url
    )));
    d.send("ops", resolved());
    let got = b.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].body["status"], "resolved");
    wait_stats(&d, "ops", Duration::from_secs(2), |s| s.sent == 3).await;
    assert_eq!(a.received().len(), 2);
    assert_eq!(chat.received().len(), 0);
}
