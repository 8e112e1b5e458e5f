//! The `notifiers:` items of a rule file: every kind parses, and mistakes
//! are rejected with a message naming the notifier and the problem.

use std::time::Duration;

use alerts::notify::{NotifierConfig, NotifierKind, TlsMode};

fn parse(yaml: &str) -> Result<Vec<NotifierConfig>, String> {
    serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())
}

fn error(yaml: &str) -> String {
    match parse(yaml) {
        Ok(c) => panic!("accepted {c:?} from\n{yaml}"),
        Err(e) => e,
    }
}

#[test]
fn every_kind_parses() {
    let configs = parse(
        r##"
- name: ops
  webhook:
    url: https://hooks.example/celeriac
    headers: {Authorization: "Bearer x"}
    timeout: 3s
- name: chat
  slack: {url: "https://hooks.slack.com/services/T/B/X", channel: "#ops", username: celeriac}
- name: am
  alertmanager: {url: "http://alertmanager:9093"}
- name: mail
  email:
    smtp: smtp.example.com:587
    from: celeriac@example.com
    to: [ops@example.com]
    username: celeriac
    password: hunter2
    tls: starttls
"##,
    )
    .unwrap();
    let kinds: Vec<_> = configs.iter().map(|c| c.kind_name()).collect();
    assert_eq!(kinds, ["webhook", "slack", "alertmanager", "email"]);
    let NotifierKind::Webhook(w) = &configs[0].kind else {
        unreachable!()
    };
    assert_eq!(w.timeout, Some(Duration::from_secs(3)));
    assert_eq!(w.headers["Authorization"], "Bearer x");
    let NotifierKind::Email(e) = &configs[3].kind else {
        unreachable!()
    };
    assert_eq!(e.tls, TlsMode::Starttls);
}

#[test]
fn mistakes_are_named() {
    let cases = [
        // (item, what the message must say)
        ("- name: ops\n", "notifier `ops` needs one of `webhook`, `slack`"),
        (
            "- name: ops\n  webhook: {url: 'http://a'}\n  slack: {url: 'http://b'}\n",
            "notifier `ops` has more than one of",
        ),
        ("- name: ops\n  webhok: {url: 'http://a'}\n", "unknown field `webhok`"),
        ("- name: ops\n  webhook: {url: 'http://a', timout: 3s}\n", "unknown field `timout`"),
        ("- name: ops\n  webhook: {url: 'http://a', timeout: soon}\n", "timeout"),
        ("- name: ops\n  webhook: {url: 'not a url'}\n", "notifier `ops`: webhook url `not a url` is not a URL"),
        ("- name: ops\n  slack: {url: 'ftp://x'}\n", "must be http or https, not `ftp`"),
        ("- name: ops\n  webhook: {url: 'http://a', headers: {'Bad Header': x}}\n", "`Bad Header` is not a valid HTTP header name"),
        ("- name: ' '\n  alertmanager: {url: 'http://a'}\n", "notifier `name` must not be empty"),
        ("- webhook: {url: 'http://a'}\n", "missing field `name`"),
        (
            "- name: m\n  email: {smtp: 'mail.example.com', from: a@example.com, to: [b@example.com], tls: none}\n",
            "email `smtp` `mail.example.com` must be host:port",
        ),
        (
            "- name: m\n  email: {smtp: 'h:25', from: 'not-an-address', to: [b@example.com], tls: none}\n",
            "notifier `m`: email `from` `not-an-address` is not an address",
        ),
        (
            "- name: m\n  email: {smtp: 'h:25', from: a@example.com, to: [], tls: none}\n",
            "email `to` needs at least one address",
        ),
        (
            "- name: m\n  email: {smtp: 'h:25', from: a@example.com, to: [b@example.com], tls: none, ca_file: /x.pem}\n",
            "email `ca_file` needs `tls: starttls` or `tls: tls`",
        ),
        (
            "- name: m\n  email: {smtp: 'h:465', from: a@example.com, to: [b@example.com], tls: tls, ca_file: /nonexistent/ca.pem}\n",
            "email `ca_file` `/nonexistent/ca.pem`: No such file",
        ),
        (
            "- name: m\n  email: {smtp: 'h:25', from: a@example.com, to: [b@example.com], tls: none, username: u}\n",
            "`username` and `password` go together",
        ),
        (
            "- name: m\n  email: {smtp: 'h:25', from: a@example.com, to: [b@example.com], tls: ssl}\n",
            "unknown variant `ssl`, expected one of `none`, `starttls`, `tls`",
        ),
        (
            "- name: m\n  email: {smtp: 'h:25', from: a@example.com, to: [b@example.com]}\n",
            "missing field `tls`",
        ),
    ];
    for (yaml, expected) in cases {
        let e = error(yaml);
        assert!(
            e.contains(expected),
            "for\n{yaml}expected `{expected}` in: {e}"
        );
    }
}

#[test]
fn debug_output_hides_secrets() {
    let configs = parse(
        "- name: ops\n  webhook: {url: 'http://a', headers: {Authorization: 'Bearer tok3n'}}\n\
         - name: m\n  email: {smtp: 'h:25', from: a@example.com, to: [b@example.com], \
         username: u, password: hunter2, tls: none}\n",
    )
    .unwrap();
    let shown = format!("{configs:?}");
    assert!(
        !shown.contains("tok3n") && !shown.contains("hunter2"),
        "{shown}"
    );
    assert!(shown.contains("Authorization"), "{shown}");
}
