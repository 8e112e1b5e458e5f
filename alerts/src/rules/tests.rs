use super::*;

fn err(text: &str) -> LoadError {
    parse("rules.yaml", text).expect_err("the file should be refused")
}

const NOTIFIERS: &str =
    "notifiers:\n  - name: ops\n    webhook: {url: \"http://127.0.0.1:9/hook\"}\n";

#[test]
fn the_issue_example_parses() {
    let text = format!(
        "{NOTIFIERS}rules:\n  - name: QueueBacklog\n    kind: queue_length\n    queue: \"default*\"\n    above: 1000\n    for: 5m\n    notify: [ops]\n"
    );
    let set = parse("rules.yaml", &text).unwrap();
    assert_eq!(set.notifiers.len(), 1);
    let r = &set.rules[0];
    assert_eq!(r.kind, Kind::QueueLength);
    assert_eq!(r.cmp, Cmp::Above);
    assert_eq!(r.threshold, 1000.0);
    assert_eq!(r.clear, 950.0, "default hysteresis band is 5%");
    assert_eq!(r.for_secs, 300.0);
    assert_eq!(r.notify, vec!["ops"]);
    assert_eq!(r.line, 5);
    assert_eq!(
        r.condition(),
        "queue_length{queue=\"default*\"} > 1000 for 5m"
    );
}

#[test]
fn a_bad_duration_names_its_line() {
    let e = err(&format!(
        "{NOTIFIERS}rules:\n  - name: A\n    kind: queue_length\n    above: 1\n    for: 5x\n"
    ));
    assert_eq!(e.line, Some(8), "{e}");
    assert!(e.message.contains("bad duration `5x`"), "{e}");
    assert!(e.to_string().starts_with("rules.yaml:8: "), "{e}");
}

#[test]
fn an_unknown_kind_names_its_line_and_the_known_kinds() {
    let e = err("rules:\n  - name: A\n    kind: queue_size\n    above: 1\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(
        e.message.contains("unknown kind `queue_size`") && e.message.contains("queue_length"),
        "{e}"
    );
}

#[test]
fn an_unknown_field_names_its_line() {
    let e = err("rules:\n  - name: A\n    kind: queue_length\n    above: 1\n    threshhold: 3\n");
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("unknown field `threshhold`"), "{e}");
}

/// A notifier entry that serde reads but the checks refuse is reported at
/// the entry (its kind's line when it has one), not at `notifiers:`.
#[test]
fn a_bad_notifier_entry_names_its_own_line() {
    let e = err(&format!(
        "{NOTIFIERS}  - name: chat\n    slack: {{url: 'ftp://x'}}\nrules: []\n"
    ));
    assert_eq!(e.line, Some(5), "{e}");
    assert!(
        e.message.starts_with("notifiers[1]: notifier `chat`") && e.message.contains("not `ftp`"),
        "{e}"
    );
    let e = err(&format!("{NOTIFIERS}  - name: lonely\nrules: []\n"));
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.message.contains("`lonely` needs one of"), "{e}");
}

#[test]
fn an_unknown_notifier_names_the_notify_line() {
    let e = err(&format!(
        "{NOTIFIERS}rules:\n  - name: A\n    kind: queue_length\n    above: 1\n  - name: B\n    kind: queue_length\n    above: 2\n    notify: [ops, pager]\n"
    ));
    assert_eq!(e.line, Some(11), "{e}");
    assert!(
        e.message
            .contains("rule `B`: unknown notifier `pager` (defined: ops)"),
        "{e}"
    );
}

#[test]
fn a_missing_threshold_names_the_rule() {
    let e = err("rules:\n  - name: A\n    kind: queue_length\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("missing threshold"), "{e}");
    // Kinds with a natural "any" threshold do not need one.
    let set = parse("r", "rules:\n  - name: W\n    kind: worker_offline\n").unwrap();
    assert_eq!(
        (set.rules[0].cmp, set.rules[0].threshold),
        (Cmp::Above, 0.0)
    );
}

#[test]
fn matchers_must_fit_the_kind() {
    let e = err("rules:\n  - name: A\n    kind: queue_length\n    above: 1\n    worker: \"w*\"\n");
    assert_eq!(e.line, Some(5), "{e}");
    assert!(
        e.message
            .contains("`worker` does not apply to kind `queue_length`"),
        "{e}"
    );
    let e = err("rules:\n  - name: A\n    kind: queue_length\n    above: 1\n    queue: \"[\"\n");
    assert!(e.message.contains("bad glob"), "{e}");
}

#[test]
fn duplicate_names_and_bad_hysteresis_are_refused() {
    let e = err("rules:\n  - name: A\n    kind: queue_length\n    above: 1\n  - name: A\n    kind: no_events\n    above: 5m\n");
    assert_eq!(e.line, Some(5), "{e}");
    let e =
        err("rules:\n  - name: A\n    kind: queue_length\n    above: 10\n    clear_below: 20\n");
    assert_eq!(e.line, Some(5), "{e}");
    let set = parse(
        "r",
        "rules:\n  - name: A\n    kind: workers_online_below\n    below: 2\n    clear_above: 3\n",
    )
    .unwrap();
    assert_eq!(set.rules[0].kind, Kind::WorkersOnline);
    assert_eq!(set.rules[0].clear, 3.0);
}

#[test]
fn templates_are_checked_at_load() {
    let e = err("rules:\n  - name: A\n    kind: queue_length\n    above: 1\n    annotations:\n      summary: \"{{ $valu }}\"\n");
    assert_eq!(e.line, Some(5), "{e}");
    assert!(e.message.contains("$valu"), "{e}");
}

#[test]
fn rules_without_notify_go_to_every_notifier() {
    let text = format!(
        "{NOTIFIERS}  - name: team\n    slack: {{url: \"https://hooks.example/x\"}}\nrules:\n  - name: A\n    kind: no_events\n    above: 10m\n"
    );
    let set = parse("r", &text).unwrap();
    assert_eq!(set.rules[0].notify, vec!["ops", "team"]);
    assert_eq!(set.rules[0].threshold, 600.0);
}

#[test]
fn an_empty_file_is_an_empty_rule_set() {
    assert!(parse("r", "# nothing yet\n").unwrap().rules.is_empty());
}

#[test]
fn the_shipped_default_rules_are_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("default-rules.yaml");
    let set = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(set.rules.len() >= 8, "{} rules", set.rules.len());
}
