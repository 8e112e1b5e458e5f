use super::*;
use serde_json::json;

fn args(s: &str) -> Result<Value, Refusal> {
    parse_args(s, Dialect::Saferepr).map(Value::Array)
}

fn kwargs(s: &str) -> Result<Value, Refusal> {
    parse_kwargs(s, Dialect::Saferepr).map(Value::Object)
}

fn py(s: &str) -> Result<Value, Refusal> {
    parse_value(s, Dialect::Python, "value")
}

/// Fixture cases whose values JSON keeps as Python had them (no tuples
/// inside, string keys), so `render` must write Celery's exact text.
const RENDERED_AS_CELERY: &[&str] = &[
    "no arguments",
    "two ints",
    "one-tuple",
    "ints at 64-bit edges",
    "floats",
    "constants",
    "quotes",
    "backslashes and control characters raw",
    "non-ASCII and C0",
    "nested to the level limit",
    "a dict argument",
    "quotes near separators",
    "no kwargs",
    "kwargs",
];

/// Every repr Celery 5.7's `saferepr` wrote for the shapes in
/// `fixtures/pyrepr/capture.py`: decoded to exactly the JSON kombu sends, or
/// refused where the fixture says the body cannot be rebuilt.
#[test]
fn real_saferepr_output() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/pyrepr/saferepr.json"
    );
    let cases: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    assert!(cases.len() > 300);
    let (mut accepted, mut random, mut rendered) = (0, 0, 0);
    for case in &cases {
        let repr = case["repr"].as_str().expect("repr");
        let note = case["note"].as_str().expect("note");
        let got = match case["kind"].as_str() {
            Some("args") => args(repr),
            _ => kwargs(repr),
        };
        let expected = &case["json"];
        let is_random = note.starts_with("random");
        random += usize::from(is_random);
        match (&got, expected) {
            (Ok(v), e) if !e.is_null() => {
                assert!(same(v, e), "{note}: {repr}\n got {v}\nwant {e}");
                if RENDERED_AS_CELERY.contains(&note) {
                    let text = match v {
                        Value::Array(items) => render_args(items),
                        other => render(other),
                    };
                    assert_eq!(text, repr, "{note}: rendering differs from Celery's");
                    rendered += 1;
                }
                accepted += 1;
            }
            (Ok(v), _) => panic!("{note}: accepted {repr} as {v}, which cannot be rebuilt"),
            (Err(r), e) if !e.is_null() && !is_random => {
                panic!("{note}: refused {repr}: {r}")
            }
            (Err(r), _) => {
                assert!(!r.reason.is_empty() && !r.text.is_empty(), "{note}: {r:?}");
            }
        }
    }
    assert_eq!(rendered, RENDERED_AS_CELERY.len());
    // The random shapes are all rebuildable; only the rare ambiguous ones
    // (a quote or backslash before a separator, a string ending in `...`)
    // may be refused.
    assert!(
        accepted * 10 > cases.len() * 7,
        "accepted {accepted} of {} ({random} random)",
        cases.len()
    );
}

/// Equal, floats within a few ulps: serde_json's reader (without its
/// `float_roundtrip` feature) can be one or two ulps off on the fixture's
/// side. The parser's own float reading is exact (`floats_are_exact`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn floats_are_exact() {
    let got = args("(1.5e-300, 0.1, 1e+22, 5e-324, 1.7976931348623157e+308)").unwrap();
    let want = [1.5e-300, 0.1, 1e22, 5e-324, f64::MAX];
    for (g, w) in got.as_array().unwrap().iter().zip(want) {
        assert_eq!(g.as_f64().unwrap().to_bits(), w.to_bits(), "{g}");
        assert!(g.is_f64());
    }
    assert!(args("(1,)").unwrap()[0].is_u64(), "ints stay ints");
}

#[test]
fn celery_shapes() {
    assert_eq!(args("()").unwrap(), json!([]));
    assert_eq!(args("(1,)").unwrap(), json!([1]));
    assert_eq!(args("[1, 2]").unwrap(), json!([1, 2]));
    assert_eq!(
        args("(1.0, -0.0, 1e+100, 2.5e-7)").unwrap().to_string(),
        "[1.0,-0.0,1e+100,2.5e-7]"
    );
    assert_eq!(
        args("('C:\\new', 'it\\'s', 'a\nb')").unwrap(),
        json!(["C:\\new", "it's", "a\nb"])
    );
    assert_eq!(
        args("({1: 'a', None: 'b', True: 'c', 1.5: 'd'},)").unwrap(),
        json!([{"1": "a", "null": "b", "true": "c", "1.5": "d"}])
    );
    assert_eq!(
        args("(18446744073709551615, -9223372036854775808)").unwrap(),
        json!([u64::MAX, i64::MIN])
    );
    assert_eq!(
        kwargs("{'x': [1, (2,)], 'y': None}").unwrap(),
        json!({"x": [1, [2]], "y": null})
    );
}

fn refused(r: Result<Value, Refusal>) -> Refusal {
    r.expect_err("refused")
}

#[test]
fn refusals_name_the_argument_and_the_text() {
    let r = refused(args("(1, 'xxxx...')"));
    assert_eq!(r.argument, "args[1]");
    assert!(r.reason.contains("cut"), "{r}");
    assert_eq!(r.text, "'xxxx...')");

    let r = refused(args("(0, 1, ...)"));
    assert_eq!(r.argument, "args[2]");
    assert!(r.reason.contains("cut"), "{r}");

    let r = refused(args("([[[...]]],)"));
    assert_eq!(r.argument, "args[0][0][0]");

    let r = refused(kwargs("{'when': datetime.datetime(2026, 1, 1, 0, 0)}"));
    assert_eq!(r.argument, "kwargs['when']");
    assert!(r.reason.contains("datetime.datetime"), "{r}");
    assert!(r.text.starts_with("datetime.datetime(2026"), "{r}");

    let r = refused(args("(<object object at 0x7f>,)"));
    assert_eq!(r.argument, "args[0]");
    assert!(r.reason.contains("object"), "{r}");

    let r = refused(args("('trailing\\',)"));
    assert!(r.reason.contains("ambiguous"), "{r}");

    for (repr, word) in [
        ("({1, 2},)", "set"),
        ("(set(),)", "set"),
        ("(frozenset({1}),)", "set"),
        ("(b'00ff',)", "bytes"),
        ("(inf,)", "NaN"),
        ("(-inf,)", "NaN"),
        ("(nan,)", "NaN"),
        ("(1000000000000000000000000000000,)", "64 bits"),
        ("(-9223372036854775809,)", "64 bits"),
        ("((1+2j),)", "expected"),
        ("(Decimal('1.10'),)", "Decimal"),
        ("(22...", "cut"),
        ("(Tru...", "cut"),
        ("(\"x\",)", "single quotes"),
        ("(1, 2", "ends early"),
        ("(1) 2", "after the end"),
        ("", "tuple or a list"),
        ("5", "tuple or a list"),
    ] {
        let r = refused(args(repr));
        assert!(r.reason.contains(word), "{repr}: {r}");
    }
    let r = refused(kwargs("{1: 2}"));
    assert!(r.reason.contains("names must be strings"), "{r}");
    assert!(refused(kwargs("(1,)")).reason.contains("dict"));
}

#[test]
fn python_dialect_reads_every_string_form() {
    assert_eq!(py(r#""double \"q\"""#).unwrap(), json!("double \"q\""));
    assert_eq!(py(r"'a\nb\t\\\''").unwrap(), json!("a\nb\t\\'"));
    assert_eq!(
        py(r"'\x41\u00e9\U0001F600\101\0'").unwrap(),
        json!("Aé😀A\0")
    );
    assert_eq!(py(r"r'C:\new'").unwrap(), json!("C:\\new"));
    assert_eq!(py(r#"R"\d+""#).unwrap(), json!("\\d+"));
    assert_eq!(py(r"u'x'").unwrap(), json!("x"));
    assert_eq!(py("'''a\n'b'\n'''").unwrap(), json!("a\n'b'\n"));
    assert_eq!(py(r#""""x""""#).unwrap(), json!("x"));
    assert_eq!(py(r"'\q'").unwrap(), json!("\\q"));
    assert_eq!(py("0x1F").unwrap(), json!(31));
    assert_eq!(py("-0o17").unwrap(), json!(-15));
    assert_eq!(py("0b101").unwrap(), json!(5));
    assert_eq!(py("1_000").unwrap(), json!(1000));
    assert_eq!(py(".5").unwrap(), json!(0.5));
    assert_eq!(py("[1, 2,]").unwrap(), json!([1, 2]));
    for (repr, word) in [
        (r"b'x'", "bytes"),
        (r"f'x'", "f-string"),
        (r"'\N{BULLET}'", "named escape"),
        (r"'\ud800'", "surrogate"),
        (r"'\x4'", "truncated"),
        ("'a\nb'", "newline"),
        ("'open", "closing quote"),
        ("1e999", "range"),
        ("...", "cut"),
        ("007", "not a number"),
    ] {
        let r = refused(py(repr));
        assert!(r.reason.contains(word), "{repr}: {r}");
    }
    // The same text means different strings in the two dialects.
    assert_eq!(
        parse_value(r"'a\tb'", Dialect::Saferepr, "v").unwrap(),
        json!("a\\tb")
    );
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = "[".repeat(100_000);
    let r = refused(args(&deep));
    assert!(r.reason.contains("deep"), "{r}");
    let r = refused(py(&"(".repeat(100_000)));
    assert!(r.reason.contains("deep"), "{r}");
}

/// Values rendered as `saferepr` renders them parse back to themselves.
#[test]
fn random_values_round_trip() {
    let mut rng = fastrand::Rng::with_seed(14);
    for _ in 0..5_000 {
        let v = random_value(&mut rng, 0);
        let repr = format!("({},)", saferepr(&v));
        match args(&repr) {
            Ok(got) => assert_eq!(got, json!([v]), "{repr}"),
            Err(r) => assert!(
                r.reason.contains("ambiguous") || r.reason.contains("`...`"),
                "{repr}: {r}"
            ),
        }
    }
}

/// Arbitrary text, and valid reprs with bytes flipped, never panic.
#[test]
fn arbitrary_input_never_panics() {
    let mut rng = fastrand::Rng::with_seed(7);
    let pieces = [
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        ",",
        ": ",
        "'",
        "\"",
        "\\",
        "'''",
        "...",
        "-",
        "+",
        "e",
        "1",
        "0x",
        "1.5",
        "None",
        "True",
        "inf",
        "b'",
        "r'",
        "\\x",
        "\\u12",
        "\\U0001",
        "\\N{",
        "é",
        "😀",
        " ",
        "\n",
        "_",
        "j",
        "<",
        "datetime(",
        "set()",
    ];
    for _ in 0..50_000 {
        let mut s = String::new();
        for _ in 0..rng.usize(0..24) {
            s.push_str(pieces[rng.usize(0..pieces.len())]);
        }
        for dialect in [Dialect::Saferepr, Dialect::Python] {
            let _ = parse_args(&s, dialect);
            let _ = parse_kwargs(&s, dialect);
            let _ = parse_value(&s, dialect, "v");
        }
    }
    for _ in 0..20_000 {
        let repr = format!("({},)", saferepr(&random_value(&mut rng, 0)));
        let mut bytes = repr.into_bytes();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(0..bytes.len());
            bytes[at] = rng.u8(..);
        }
        let s = String::from_utf8_lossy(&bytes);
        for dialect in [Dialect::Saferepr, Dialect::Python] {
            let _ = parse_args(&s, dialect);
        }
    }
}

fn random_string(rng: &mut fastrand::Rng) -> String {
    const CHARS: &[char] = &[
        'a', 'b', '\'', '"', '\\', ' ', ',', ':', '(', ']', '}', '.', '\n', 'é', '😀', '\0',
    ];
    (0..rng.usize(0..10))
        .map(|_| CHARS[rng.usize(0..CHARS.len())])
        .collect()
}

fn random_value(rng: &mut fastrand::Rng, depth: usize) -> Value {
    let pick = if depth >= 2 {
        rng.usize(0..6)
    } else {
        rng.usize(0..9)
    };
    match pick {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => json!(rng.u64(..)),
        4 => json!((rng.f64() - 0.5) * 10f64.powi(rng.i32(-300..300))),
        5 => Value::String(random_string(rng)),
        6 | 7 => Value::Array(
            (0..rng.usize(0..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.usize(0..4))
                .map(|_| (random_string(rng), random_value(rng, depth + 1)))
                .collect(),
        ),
    }
}

#[test]
fn floats_render_as_python_writes_them() {
    for (f, want) in [
        (1.0, "1.0"),
        (-0.0, "-0.0"),
        (0.1, "0.1"),
        (1e100, "1e+100"),
        (1.5e-300, "1.5e-300"),
        (1e-7, "1e-07"),
        (0.0001, "0.0001"),
        (0.00012, "0.00012"),
        (1e16, "1e+16"),
        (1234567890123456.0, "1234567890123456.0"),
        (123456789012345680.0, "1.2345678901234568e+17"),
        (2.5, "2.5"),
        (-123.456, "-123.456"),
    ] {
        assert_eq!(python_float(f), want, "{f}");
    }
    assert_eq!(render_args(&[json!(1)]), "(1,)");
    assert_eq!(render_args(&[]), "()");
    assert_eq!(
        render_args(&[json!("it's"), json!({"k": [1.5, null, true]})]),
        "('it\\'s', {'k': [1.5, None, True]})"
    );
}

/// `saferepr` as Celery writes JSON-shaped values (lists as lists).
fn saferepr(v: &Value) -> String {
    let rendered = render(v);
    assert_eq!(rendered, saferepr_model(v));
    rendered
}

fn saferepr_model(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => python_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => format!("'{}'", s.replace('\'', "\\'")),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(saferepr_model)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("'{}': {}", k.replace('\'', "\\'"), saferepr_model(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
