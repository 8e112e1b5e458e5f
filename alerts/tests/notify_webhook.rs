//! The webhook and Slack notifiers against a real local HTTP server: the
//! exact bodies, custom headers, and which failures are retried.

mod notify_common;

use std::time::Duration;

use alerts::notify::Dispatcher;
use notify_common::*;
use serde_json::json;

#[tokio::test]
async fn webhook_posts_the_documented_body_with_headers() {
    let rx = Receiver::start().await;
    let configs = notifiers(&format!(
        "- name: ops\n  webhook:\n    url: {}\n    headers: {{Authorization: Bearer s3cret}}\n",
        rx.url
    ));
    let d = Dispatcher::new(&configs, fast_options());

    d.send("ops", firing());
    d.send("ops", resolved());
    let got = rx.wait_for(2, Duration::from_secs(5)).await;

    assert_eq!(
        got[0].body,
        json!({
            "version": "1",
            "status": "firing",
            "rule": "QueueBacklog",
            "severity": "warning",
            "labels": {"queue": "default"},
            "annotations": {
                "summary": "Queue default has 1500 messages",
                "runbook_url": "https://runbooks.example/backlog"
            },
            "value": 1500.0,
            "threshold": 1000.0,
            "startsAt": "2023-11-14T22:13:20.000Z",
            "endsAt": null,
            "fingerprint": "QueueBacklog{queue=default}",
            "generatorURL": "http://celeriac.example/alerts"
        })
    );
    assert_eq!(got[0].headers["authorization"], "Bearer s3cret");
    assert_eq!(got[0].headers["content-type"], "application/json");

    // The resolve differs only in status, value and endsAt.
    let mut expected = got[0].body.clone();
    expected["status"] = json!("resolved");
    expected["value"] = json!(10.0);
    expected["endsAt"] = json!("2023-11-14T22:18:20.000Z");
    assert_eq!(got[1].body, expected);

    let s = wait_stats(&d, "ops", Duration::from_secs(2), |s| s.sent == 2).await;
    assert_eq!((s.kind.as_str(), s.failed, s.dropped), ("webhook", 0, 0));
    assert!(
        s.last_success_at.is_some() && s.last_error.is_none(),
        "{s:?}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_until_accepted() {
    let rx = Receiver::answering(&[500, 503]).await;
    let configs = notifiers(&format!("- name: ops\n  webhook: {{url: {}}}\n", rx.url));
    let d = Dispatcher::new(&configs, fast_options());

    d.send("ops", firing());
    let got = rx.wait_for(3, Duration::from_secs(5)).await;
    // Retries carry the same body.
    assert_eq!(got[0].body, got[2].body);
    // Backoff: at least half the initial 50 ms before the first retry.
    assert!(got[1].at - got[0].at >= Duration::from_millis(25));

    let s = wait_stats(&d, "ops", Duration::from_secs(2), |s| s.sent == 1).await;
    assert_eq!(s.failed, 0);
    // The last failed attempt stays visible to operators.
    assert!(s.last_error.as_deref().unwrap().contains("503"), "{s:?}");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let rx = Receiver::answering(&[400]).await;
    let configs = notifiers(&format!("- name: ops\n  webhook: {{url: {}}}\n", rx.url));
    let d = Dispatcher::new(&configs, fast_options());

    d.send("ops", firing());
    let s = wait_stats(&d, "ops", Duration::from_secs(5), |s| s.failed == 1).await;
    assert_eq!(s.sent, 0);
    let err = s.last_error.unwrap();
    assert!(err.contains("HTTP 400") && err.contains(&rx.url), "{err}");
    // Longer than every retry would have taken.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rx.received().len(), 1, "a 400 must not be retried");
}

#[tokio::test]
async fn slack_message_has_text_and_a_coloured_attachment() {
    let rx = Receiver::start().await;
    let configs = notifiers(&format!(
        "- name: chat\n  slack: {{url: {}, channel: '#ops', username: celeriac}}\n",
        rx.url
    ));
    let d = Dispatcher::new(&configs, fast_options());
    assert_eq!(stats(&d, "chat").kind, "slack");

    d.send("chat", firing());
    d.send("chat", resolved());
    let got = rx.wait_for(2, Duration::from_secs(5)).await;

    let msg = &got[0].body;
    assert_eq!(msg["text"], "[FIRING] QueueBacklog {queue=\"default\"}");
    assert_eq!(msg["channel"], "#ops");
    assert_eq!(msg["username"], "celeriac");
    let att = &msg["attachments"][0];
    assert_eq!(att["color"], "#d63232");
    assert_eq!(att["title"], msg["text"]);
    assert_eq!(att["title_link"], "http://celeriac.example/alerts");
    assert_eq!(att["text"], "Queue default has 1500 messages");
    let fields = att["fields"].as_array().unwrap();
    let field = |title: &str| {
        fields
            .iter()
            .find(|f| f["title"] == title)
            .unwrap_or_else(|| panic!("no field {title} in {fields:?}"))["value"]
            .clone()
    };
    assert_eq!(field("Severity"), "warning");
    assert_eq!(field("Value"), "value 1500 (threshold 1000)");
    assert_eq!(field("queue"), "default");
    assert_eq!(field("runbook_url"), "https://runbooks.example/backlog");

    let msg = &got[1].body;
    assert_eq!(msg["text"], "[RESOLVED] QueueBacklog {queue=\"default\"}");
    assert_eq!(msg["attachments"][0]["color"], "#2eb886");
}
