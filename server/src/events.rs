//! The typed Celery event and its decoder (docs/celery-protocol.md §1.4, §2).
//!
//! A message body is one JSON object or, for `task.multi`, an array of them.
//! Each element is decoded on its own: a bad element is reported with a
//! reason and skipped, the good ones beside it are kept.

/// What kind of event, from the `type` field (`task-succeeded`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    TaskSent,
    TaskReceived,
    TaskStarted,
    TaskSucceeded,
    TaskFailed,
    TaskRetried,
    TaskRevoked,
    TaskRejected,
    /// Any other `task-<x>` (e.g. `task-progress`, `task-cancelled`); holds `<x>`.
    TaskCustom(String),
    WorkerOnline,
    WorkerHeartbeat,
    WorkerOffline,
    /// Anything else (`worker-elect`, other groups): counted, otherwise ignored.
    Other(String),
}

/// One decoded event. Envelope fields first; the rest are present only on the
/// event types that carry them (docs/celery-protocol.md §2.2, §2.3).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Event {
    pub kind: EventKind,
    pub hostname: String,
    /// Sender's `time.time()` (UTC epoch seconds), as sent (not TZ-shifted).
    pub timestamp: f64,
    pub utcoffset: Option<f64>,
    pub pid: Option<i64>,
    pub clock: Option<u64>,

    // Task events.
    pub uuid: Option<String>,
    pub name: Option<String>,
    pub args: Option<String>,
    pub kwargs: Option<String>,
    pub root_id: Option<String>,
    pub parent_id: Option<String>,
    pub retries: Option<i64>,
    pub eta: Option<String>,
    pub expires: Option<String>,
    pub queue: Option<String>,
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
    pub result: Option<String>,
    pub runtime: Option<f64>,
    pub exception: Option<String>,
    pub traceback: Option<String>,
    pub terminated: Option<bool>,
    /// An int on the wire normally, a string on one path; kept as text.
    pub signum: Option<String>,
    pub expired: Option<bool>,
    pub requeue: Option<bool>,

    // Worker events.
    pub freq: Option<f64>,
    pub active: Option<i64>,
    pub processed: Option<i64>,
    pub loadavg: Option<[f64; 3]>,
    pub sw_ident: Option<String>,
    pub sw_ver: Option<String>,
    pub sw_sys: Option<String>,
}

impl Default for EventKind {
    fn default() -> Self {
        EventKind::Other(String::new())
    }
}

/// Cap on `args`, `kwargs`, `result` and `exception`. Celery already cuts
/// these reprs near 1 KiB, so only a hostile or broken producer reaches it.
pub const MAX_REPR_BYTES: usize = 64 * 1024;
/// Cap on `traceback`.
pub const MAX_TRACEBACK_BYTES: usize = 256 * 1024;
/// Cap on every other string (names, ids, hostnames): they are interned or
/// indexed, so a huge one would be kept for good.
pub const MAX_SHORT_BYTES: usize = 1024;
/// Appended to a string cut at its cap.
pub const TRUNCATION_MARKER: &str = "...";

/// Why one body or one element of a body was rejected.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("body is not valid UTF-8")]
    InvalidUtf8,
    #[error("body is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    #[error("event is not a JSON object")]
    NotAnObject,
    #[error("event has no `type`")]
    MissingType,
    #[error("event has no `hostname`")]
    MissingHostname,
    #[error("event has no `timestamp`")]
    MissingTimestamp,
    #[error("task event has no `uuid`")]
    MissingUuid,
    #[error("field `{field}` has the wrong JSON type")]
    WrongType { field: &'static str },
    #[error("body of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
}

/// Why a body or element was skipped: the closed set of
/// `celeriac_events_malformed_total{reason}` labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MalformedReason {
    InvalidUtf8,
    InvalidJson,
    NotAnObject,
    MissingType,
    MissingHostname,
    MissingTimestamp,
    MissingUuid,
    WrongType,
    TooLarge,
}

impl MalformedReason {
    pub const ALL: [MalformedReason; 9] = [
        MalformedReason::InvalidUtf8,
        MalformedReason::InvalidJson,
        MalformedReason::NotAnObject,
        MalformedReason::MissingType,
        MalformedReason::MissingHostname,
        MalformedReason::MissingTimestamp,
        MalformedReason::MissingUuid,
        MalformedReason::WrongType,
        MalformedReason::TooLarge,
    ];

    /// A stable, low-cardinality label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            MalformedReason::InvalidUtf8 => "invalid_utf8",
            MalformedReason::InvalidJson => "invalid_json",
            MalformedReason::NotAnObject => "not_an_object",
            MalformedReason::MissingType => "missing_type",
            MalformedReason::MissingHostname => "missing_hostname",
            MalformedReason::MissingTimestamp => "missing_timestamp",
            MalformedReason::MissingUuid => "missing_uuid",
            MalformedReason::WrongType => "wrong_type",
            MalformedReason::TooLarge => "too_large",
        }
    }
}

impl DecodeError {
    pub fn kind(&self) -> MalformedReason {
        match self {
            DecodeError::InvalidUtf8 => MalformedReason::InvalidUtf8,
            DecodeError::InvalidJson(_) => MalformedReason::InvalidJson,
            DecodeError::NotAnObject => MalformedReason::NotAnObject,
            DecodeError::MissingType => MalformedReason::MissingType,
            DecodeError::MissingHostname => MalformedReason::MissingHostname,
            DecodeError::MissingTimestamp => MalformedReason::MissingTimestamp,
            DecodeError::MissingUuid => MalformedReason::MissingUuid,
            DecodeError::WrongType { .. } => MalformedReason::WrongType,
            DecodeError::TooLarge { .. } => MalformedReason::TooLarge,
        }
    }

    /// A stable, low-cardinality label for metrics.
    pub fn reason(&self) -> &'static str {
        self.kind().as_str()
    }
}

/// What decoding one body did besides producing events and errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeInfo {
    /// String fields cut to their cap.
    pub truncated_fields: u32,
}

impl EventKind {
    /// From the `type` field.
    pub fn parse(t: &str) -> EventKind {
        match t {
            "task-sent" => EventKind::TaskSent,
            "task-received" => EventKind::TaskReceived,
            "task-started" => EventKind::TaskStarted,
            "task-succeeded" => EventKind::TaskSucceeded,
            "task-failed" => EventKind::TaskFailed,
            "task-retried" => EventKind::TaskRetried,
            "task-revoked" => EventKind::TaskRevoked,
            "task-rejected" => EventKind::TaskRejected,
            "worker-online" => EventKind::WorkerOnline,
            "worker-heartbeat" => EventKind::WorkerHeartbeat,
            "worker-offline" => EventKind::WorkerOffline,
            _ => match t.strip_prefix("task-") {
                Some(subject) => EventKind::TaskCustom(subject.to_owned()),
                None => EventKind::Other(t.to_owned()),
            },
        }
    }

    /// Task events (built-in or custom) carry a `uuid`.
    pub fn is_task(&self) -> bool {
        !matches!(
            self,
            EventKind::WorkerOnline
                | EventKind::WorkerHeartbeat
                | EventKind::WorkerOffline
                | EventKind::Other(_)
        )
    }

    /// Events whose fields Celery defines; others carry whatever the sender
    /// chose, so a known field name with another type is dropped, not fatal.
    fn is_builtin(&self) -> bool {
        !matches!(self, EventKind::TaskCustom(_) | EventKind::Other(_))
    }
}

/// Decodes one message body (an event object, or a `task.multi` array of
/// them) into `out`; each rejected element adds one error to `errors`.
pub fn decode_body(body: &[u8], out: &mut Vec<Event>, errors: &mut Vec<DecodeError>) -> DecodeInfo {
    decode_body_limited(body, usize::MAX, out, errors)
}

/// [`decode_body`], but a body over `max_bytes` is one `too_large` error.
pub fn decode_body_limited(
    body: &[u8],
    max_bytes: usize,
    out: &mut Vec<Event>,
    errors: &mut Vec<DecodeError>,
) -> DecodeInfo {
    let mut info = DecodeInfo::default();
    if body.len() > max_bytes {
        errors.push(DecodeError::TooLarge {
            size: body.len(),
            max: max_bytes,
        });
        return info;
    }
    let Ok(text) = std::str::from_utf8(body) else {
        errors.push(DecodeError::InvalidUtf8);
        return info;
    };
    let (n_out, n_err) = (out.len(), errors.len());
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = raw::BodySeed {
        out: &mut *out,
        errors: &mut *errors,
        info: &mut info,
    };
    let parsed = serde::de::DeserializeSeed::deserialize(seed, &mut de).and_then(|()| de.end());
    if let Err(e) = parsed {
        // A syntax error anywhere voids the whole body, including elements
        // of an array decoded before it.
        out.truncate(n_out);
        errors.truncate(n_err);
        info = DecodeInfo::default();
        errors.push(DecodeError::InvalidJson(e));
    }
    info
}

/// Cuts `s` to at most `max` bytes at a char boundary, marker included.
fn cap(s: std::borrow::Cow<'_, str>, max: usize, info: &mut DecodeInfo) -> String {
    if s.len() <= max {
        return s.into_owned();
    }
    info.truncated_fields += 1;
    let mut end = max.saturating_sub(TRUNCATION_MARKER.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut t = String::with_capacity(end + TRUNCATION_MARKER.len());
    t.push_str(&s[..end]);
    t.push_str(TRUNCATION_MARKER);
    t
}

/// Decoding straight from the JSON tokens: known fields are captured as
/// borrowed, loosely typed values, unknown ones are skipped unparsed, and the
/// types are checked once `type` is known (it comes last on the wire).
mod raw {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{
        self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
    };

    use super::{
        cap, DecodeError, DecodeInfo, Event, EventKind, MAX_REPR_BYTES, MAX_SHORT_BYTES,
        MAX_TRACEBACK_BYTES,
    };

    /// Any JSON value, as much as the known fields need of it.
    #[derive(Debug)]
    enum Val<'a> {
        Null,
        Bool(bool),
        I64(i64),
        U64(u64),
        F64(f64),
        Str(Cow<'a, str>),
        /// An array: the first three entries if they are all numbers.
        Array {
            v: [f64; 3],
            len: usize,
            numbers: bool,
        },
        Object,
    }

    impl<'de> de::Deserialize<'de> for Val<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ValVisitor)
        }
    }

    struct ValVisitor;

    impl<'de> Visitor<'de> for ValVisitor {
        type Value = Val<'de>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_unit<E>(self) -> Result<Val<'de>, E> {
            Ok(Val::Null)
        }
        fn visit_none<E>(self) -> Result<Val<'de>, E> {
            Ok(Val::Null)
        }
        fn visit_bool<E>(self, v: bool) -> Result<Val<'de>, E> {
            Ok(Val::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Val<'de>, E> {
            Ok(Val::I64(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Val<'de>, E> {
            Ok(Val::U64(v))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Val<'de>, E> {
            Ok(Val::F64(v))
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
            Ok(Val::Str(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
            Ok(Val::Str(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
            Ok(Val::Str(Cow::Owned(v)))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
            let mut v = [0.0; 3];
            let (mut len, mut numbers) = (0, true);
            while let Some(Num(x)) = seq.next_element()? {
                match (x, v.get_mut(len)) {
                    (Some(x), Some(slot)) => *slot = x,
                    (None, _) => numbers = false,
                    (Some(_), None) => {}
                }
                len += 1;
            }
            Ok(Val::Array { v, len, numbers })
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(Val::Object)
        }
    }

    /// An array element: its value if it is a number, after skipping it
    /// whatever it is.
    struct Num(Option<f64>);

    impl<'de> de::Deserialize<'de> for Num {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Ok(Num(match Val::deserialize(d)? {
                Val::I64(x) => Some(x as f64),
                Val::U64(x) => Some(x as f64),
                Val::F64(x) => Some(x),
                _ => None,
            }))
        }
    }

    /// A map key: which known field, if any. Matched on the spot, so keys
    /// never allocate.
    struct FieldKey(Option<Field>);

    impl<'de> de::Deserialize<'de> for FieldKey {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_identifier(FieldKeyVisitor)
        }
    }

    struct FieldKeyVisitor;

    impl Visitor<'_> for FieldKeyVisitor {
        type Value = FieldKey;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a field name")
        }
        fn visit_str<E>(self, v: &str) -> Result<FieldKey, E> {
            Ok(FieldKey(Field::of(v)))
        }
    }

    macro_rules! fields {
        ($($f:ident => $name:literal,)*) => {
            #[allow(non_camel_case_types)]
            #[derive(Debug, Clone, Copy)]
            enum Field {
                $($f,)*
            }

            impl Field {
                fn of(key: &str) -> Option<Field> {
                    match key {
                        $($name => Some(Field::$f),)*
                        _ => None,
                    }
                }
            }

            /// The known fields of one event object, as found.
            #[derive(Debug, Default)]
            struct Raw<'a> {
                $($f: Option<Val<'a>>,)*
            }

            impl<'a> Raw<'a> {
                fn slot(&mut self, field: Field) -> &mut Option<Val<'a>> {
                    match field {
                        $(Field::$f => &mut self.$f,)*
                    }
                }
            }
        };
    }

    fields! {
        type_ => "type",
        hostname => "hostname",
        timestamp => "timestamp",
        utcoffset => "utcoffset",
        pid => "pid",
        clock => "clock",
        uuid => "uuid",
        name => "name",
        args => "args",
        kwargs => "kwargs",
        root_id => "root_id",
        parent_id => "parent_id",
        retries => "retries",
        eta => "eta",
        expires => "expires",
        queue => "queue",
        exchange => "exchange",
        routing_key => "routing_key",
        result => "result",
        runtime => "runtime",
        exception => "exception",
        traceback => "traceback",
        terminated => "terminated",
        signum => "signum",
        expired => "expired",
        requeue => "requeue",
        freq => "freq",
        active => "active",
        processed => "processed",
        loadavg => "loadavg",
        sw_ident => "sw_ident",
        sw_ver => "sw_ver",
        sw_sys => "sw_sys",
    }

    /// The whole body: an object, or an array of them.
    pub(super) struct BodySeed<'o> {
        pub out: &'o mut Vec<Event>,
        pub errors: &'o mut Vec<DecodeError>,
        pub info: &'o mut DecodeInfo,
    }

    impl<'de> DeserializeSeed<'de> for BodySeed<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(BodyVisitor {
                sink: self,
                nested: false,
            })
        }
    }

    struct BodyVisitor<'o> {
        sink: BodySeed<'o>,
        /// Inside the top-level array: a nested array is not an event.
        nested: bool,
    }

    impl BodyVisitor<'_> {
        fn not_an_object<E>(self) -> Result<(), E> {
            self.sink.errors.push(DecodeError::NotAnObject);
            Ok(())
        }
    }

    impl<'de> Visitor<'de> for BodyVisitor<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an event object or an array of them")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut raw = Raw::default();
            while let Some(FieldKey(k)) = map.next_key()? {
                match k {
                    // Python's json keeps the last of duplicate keys.
                    Some(field) => *raw.slot(field) = Some(map.next_value()?),
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            match raw.into_event(self.sink.info) {
                Ok(ev) => self.sink.out.push(ev),
                Err(e) => self.sink.errors.push(e),
            }
            Ok(())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            if self.nested {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return self.not_an_object();
            }
            let BodySeed { out, errors, info } = self.sink;
            while seq
                .next_element_seed(ElementSeed {
                    out: &mut *out,
                    errors: &mut *errors,
                    info: &mut *info,
                })?
                .is_some()
            {}
            Ok(())
        }

        fn visit_unit<E>(self) -> Result<(), E> {
            self.not_an_object()
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            self.not_an_object()
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            self.not_an_object()
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            self.not_an_object()
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            self.not_an_object()
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            self.not_an_object()
        }
    }

    struct ElementSeed<'o> {
        out: &'o mut Vec<Event>,
        errors: &'o mut Vec<DecodeError>,
        info: &'o mut DecodeInfo,
    }

    impl<'de> DeserializeSeed<'de> for ElementSeed<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(BodyVisitor {
                sink: BodySeed {
                    out: self.out,
                    errors: self.errors,
                    info: self.info,
                },
                nested: true,
            })
        }
    }

    /// Type checks for one event. `strict` is off for custom events, whose
    /// fields are the sender's own: a mismatch there drops the field.
    struct Check<'i> {
        strict: bool,
        info: &'i mut DecodeInfo,
    }

    type R<T> = Result<Option<T>, DecodeError>;

    impl Check<'_> {
        fn wrong<T>(&self, field: &'static str) -> R<T> {
            if self.strict {
                Err(DecodeError::WrongType { field })
            } else {
                Ok(None)
            }
        }

        fn string(&mut self, v: Option<Val<'_>>, field: &'static str, max: usize) -> R<String> {
            match v {
                None | Some(Val::Null) => Ok(None),
                Some(Val::Str(s)) => Ok(Some(cap(s, max, self.info))),
                Some(_) => self.wrong(field),
            }
        }

        fn short(&mut self, v: Option<Val<'_>>, field: &'static str) -> R<String> {
            self.string(v, field, MAX_SHORT_BYTES)
        }

        fn int(&self, v: Option<Val<'_>>, field: &'static str) -> R<i64> {
            match v {
                None | Some(Val::Null) => Ok(None),
                Some(Val::I64(x)) => Ok(Some(x)),
                Some(Val::U64(x)) => match i64::try_from(x) {
                    Ok(x) => Ok(Some(x)),
                    Err(_) => self.wrong(field),
                },
                Some(_) => self.wrong(field),
            }
        }

        fn uint(&self, v: Option<Val<'_>>, field: &'static str) -> R<u64> {
            match v {
                None | Some(Val::Null) => Ok(None),
                Some(Val::U64(x)) => Ok(Some(x)),
                Some(_) => self.wrong(field),
            }
        }

        fn float(&self, v: Option<Val<'_>>, field: &'static str) -> R<f64> {
            match v {
                None | Some(Val::Null) => Ok(None),
                Some(Val::F64(x)) => Ok(Some(x)),
                Some(Val::I64(x)) => Ok(Some(x as f64)),
                Some(Val::U64(x)) => Ok(Some(x as f64)),
                Some(_) => self.wrong(field),
            }
        }

        fn boolean(&self, v: Option<Val<'_>>, field: &'static str) -> R<bool> {
            match v {
                None | Some(Val::Null) => Ok(None),
                Some(Val::Bool(b)) => Ok(Some(b)),
                Some(_) => self.wrong(field),
            }
        }

        /// An int normally, a string on Celery's `Terminated` path.
        fn signum(&mut self, v: Option<Val<'_>>) -> R<String> {
            match v {
                Some(Val::I64(x)) => Ok(Some(x.to_string())),
                Some(Val::U64(x)) => Ok(Some(x.to_string())),
                v => self.short(v, "signum"),
            }
        }

        fn loadavg(&self, v: Option<Val<'_>>) -> R<[f64; 3]> {
            match v {
                None | Some(Val::Null) => Ok(None),
                Some(Val::Array {
                    v,
                    len: 3,
                    numbers: true,
                }) => Ok(Some(v)),
                Some(_) => self.wrong("loadavg"),
            }
        }
    }

    impl Raw<'_> {
        fn into_event(self, info: &mut DecodeInfo) -> Result<Event, DecodeError> {
            let mut c = Check { strict: true, info };
            let kind = match self.type_ {
                None | Some(Val::Null) => return Err(DecodeError::MissingType),
                Some(Val::Str(t)) => EventKind::parse(&t),
                Some(_) => return Err(DecodeError::WrongType { field: "type" }),
            };
            let hostname = c
                .short(self.hostname, "hostname")?
                .ok_or(DecodeError::MissingHostname)?;
            let timestamp = c
                .float(self.timestamp, "timestamp")?
                .ok_or(DecodeError::MissingTimestamp)?;
            c.strict = kind.is_task();
            let uuid = c.short(self.uuid, "uuid")?;
            if uuid.is_none() && kind.is_task() {
                return Err(DecodeError::MissingUuid);
            }
            c.strict = kind.is_builtin();
            Ok(Event {
                hostname,
                timestamp,
                utcoffset: c.float(self.utcoffset, "utcoffset")?,
                pid: c.int(self.pid, "pid")?,
                clock: c.uint(self.clock, "clock")?,
                uuid,
                name: c.short(self.name, "name")?,
                args: c.string(self.args, "args", MAX_REPR_BYTES)?,
                kwargs: c.string(self.kwargs, "kwargs", MAX_REPR_BYTES)?,
                root_id: c.short(self.root_id, "root_id")?,
                parent_id: c.short(self.parent_id, "parent_id")?,
                retries: c.int(self.retries, "retries")?,
                eta: c.short(self.eta, "eta")?,
                expires: c.short(self.expires, "expires")?,
                queue: c.short(self.queue, "queue")?,
                exchange: c.short(self.exchange, "exchange")?,
                routing_key: c.short(self.routing_key, "routing_key")?,
                result: c.string(self.result, "result", MAX_REPR_BYTES)?,
                runtime: c.float(self.runtime, "runtime")?,
                exception: c.string(self.exception, "exception", MAX_REPR_BYTES)?,
                traceback: c.string(self.traceback, "traceback", MAX_TRACEBACK_BYTES)?,
                terminated: c.boolean(self.terminated, "terminated")?,
                signum: c.signum(self.signum)?,
                expired: c.boolean(self.expired, "expired")?,
                requeue: c.boolean(self.requeue, "requeue")?,
                freq: c.float(self.freq, "freq")?,
                active: c.int(self.active, "active")?,
                processed: c.int(self.processed, "processed")?,
                loadavg: c.loadavg(self.loadavg)?,
                sw_ident: c.short(self.sw_ident, "sw_ident")?,
                sw_ver: c.short(self.sw_ver, "sw_ver")?,
                sw_sys: c.short(self.sw_sys, "sw_sys")?,
                kind,
            })
        }
    }
}

/// Fixture readers shared by the decoder's and the state's tests.
#[cfg(test)]
pub(crate) mod fixtures {
    /// Every scenario under `fixtures/events/scenarios`, by file stem.
    pub const SCENARIOS: [&str; 14] = [
        "success",
        "failure",
        "retry",
        "revoke_before_start",
        "revoke_terminate",
        "countdown",
        "expired",
        "rejected",
        "custom",
        "gevent",
        "online",
        "heartbeat",
        "heartbeat_req",
        "offline",
    ];

    fn dir() -> &'static str {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/events")
    }

    /// The message bodies of one scenario, in wire order.
    pub fn scenario(name: &str) -> Vec<String> {
        let path = format!("{}/scenarios/{name}.txt", dir());
        let text = std::fs::read_to_string(&path).expect("fixture file");
        text.lines()
            .filter_map(|l| l.strip_prefix("body: "))
            .map(str::to_owned)
            .collect()
    }

    /// (receive time, body) of every `celeryev` message of a stream file.
    pub fn stream(file: &str) -> Vec<(f64, String)> {
        let path = format!("{}/{file}", dir());
        let text = std::fs::read_to_string(&path).expect("fixture file");
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("fixture line"))
            .filter(|v| v["exchange"] == "celeryev")
            .map(|v| {
                let recv = v["recv"].as_f64().expect("recv");
                let body = v["body"].as_str().expect("body").to_owned();
                (recv, body)
            })
            .collect()
    }

    /// Decodes a body that must be valid.
    pub fn decode(body: &str) -> Vec<super::Event> {
        let (mut out, mut errors) = (Vec::new(), Vec::new());
        super::decode_body(body.as_bytes(), &mut out, &mut errors);
        assert!(errors.is_empty(), "{errors:?} in {body}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `body` and renders what came out, one line per event or error:
    /// `kind uuid` for events, `!reason` for errors.
    fn check(body: &[u8], expect: &[&str]) {
        let (mut out, mut errors) = (Vec::new(), Vec::new());
        decode_body_limited(body, 1 << 20, &mut out, &mut errors);
        let mut got: Vec<String> = out
            .iter()
            .map(|e| format!("{:?} {}", e.kind, e.uuid.as_deref().unwrap_or("-")))
            .collect();
        got.extend(errors.iter().map(|e| format!("!{}", e.reason())));
        assert_eq!(got, expect, "body: {}", String::from_utf8_lossy(body));
    }

    const OK: &str =
        r#"{"type": "task-started", "hostname": "w1@vm", "timestamp": 1.5, "uuid": "a"}"#;

    fn with(extra: &str) -> String {
        format!(
            r#"{{"type": "task-started", "hostname": "w1@vm", "timestamp": 1.5, "uuid": "a", {extra}}}"#
        )
    }

    #[test]
    fn every_reason() {
        check(b"\xff{}", &["!invalid_utf8"]);
        check(b"{\"type\": ", &["!invalid_json"]);
        check(b"", &["!invalid_json"]);
        check(format!("{OK} x").as_bytes(), &["!invalid_json"]);
        check(b"5", &["!not_an_object"]);
        check(b"\"task-sent\"", &["!not_an_object"]);
        check(b"null", &["!not_an_object"]);
        check(br#"{"hostname": "w", "timestamp": 1}"#, &["!missing_type"]);
        check(
            br#"{"type": null, "hostname": "w", "timestamp": 1}"#,
            &["!missing_type"],
        );
        check(
            br#"{"type": "worker-online", "timestamp": 1}"#,
            &["!missing_hostname"],
        );
        check(
            br#"{"type": "worker-online", "hostname": "w"}"#,
            &["!missing_timestamp"],
        );
        check(
            br#"{"type": "task-started", "hostname": "w", "timestamp": 1}"#,
            &["!missing_uuid"],
        );
        check(
            br#"{"type": "task-progress", "hostname": "w", "timestamp": 1}"#,
            &["!missing_uuid"],
        );
        check(
            br#"{"type": 5, "hostname": "w", "timestamp": 1}"#,
            &["!wrong_type"],
        );
        check(
            br#"{"type": "worker-online", "hostname": 5, "timestamp": 1}"#,
            &["!wrong_type"],
        );
        check(
            br#"{"type": "worker-online", "hostname": "w", "timestamp": "1"}"#,
            &["!wrong_type"],
        );
        for bad in [
            r#""retries": "x""#,
            r#""retries": 1.5"#,
            r#""pid": true"#,
            r#""clock": -1"#,
            r#""clock": 1.0"#,
            r#""utcoffset": "0""#,
            r#""args": ["a"]"#,
            r#""result": 5"#,
            r#""runtime": "fast""#,
            r#""terminated": 1"#,
            r#""signum": 1.5"#,
            r#""loadavg": 3"#,
            r#""loadavg": [1, 2]"#,
            r#""loadavg": [1, "2", 3]"#,
            r#""freq": {}"#,
            r#""uuid": 7"#,
        ] {
            check(with(bad).as_bytes(), &["!wrong_type"]);
        }
        let (mut out, mut errors) = (Vec::new(), Vec::new());
        decode_body_limited(OK.as_bytes(), 10, &mut out, &mut errors);
        assert!(out.is_empty());
        assert_eq!(
            errors.iter().map(DecodeError::reason).collect::<Vec<_>>(),
            ["too_large"]
        );
        for e in &errors {
            assert!(MalformedReason::ALL.contains(&e.kind()));
        }
    }

    #[test]
    fn objects_arrays_and_bad_elements() {
        check(OK.as_bytes(), &["TaskStarted a"]);
        check(b"[]", &[]);
        check(b" [ ] ", &[]);
        check(format!("[{OK}]").as_bytes(), &["TaskStarted a"]);
        // One bad element among good ones is skipped on its own.
        check(
            format!(r#"[{OK}, {}, 3, [], {OK}]"#, with(r#""retries": "x""#)).as_bytes(),
            &[
                "TaskStarted a",
                "TaskStarted a",
                "!wrong_type",
                "!not_an_object",
                "!not_an_object",
            ],
        );
        check(b"[5]", &["!not_an_object"]);
        // A syntax error voids the whole body, good elements included.
        check(format!("[{OK}, {{]").as_bytes(), &["!invalid_json"]);
    }

    #[test]
    fn accepted_variants() {
        let ev = |extra: &str| {
            let (mut out, mut errors) = (Vec::new(), Vec::new());
            decode_body(with(extra).as_bytes(), &mut out, &mut errors);
            assert!(errors.is_empty(), "{extra}: {errors:?}");
            out.pop().expect("one event")
        };
        assert_eq!(ev(r#""utcoffset": 0"#).utcoffset, Some(0.0));
        assert_eq!(ev(r#""utcoffset": -5.5"#).utcoffset, Some(-5.5));
        assert_eq!(ev(r#""clock": 7"#).clock, Some(7));
        assert_eq!(ev(r#""clock": null"#).clock, None);
        assert_eq!(ev(r#""signum": 15"#).signum.as_deref(), Some("15"));
        assert_eq!(
            ev(r#""signum": "SIGTERM""#).signum.as_deref(),
            Some("SIGTERM")
        );
        assert_eq!(ev(r#""signum": null"#).signum, None);
        assert_eq!(ev(r#""runtime": null"#).runtime, None);
        assert_eq!(ev(r#""runtime": 2"#).runtime, Some(2.0));
        assert_eq!(ev(r#""timestamp": 3"#).timestamp, 3.0);
        assert_eq!(
            ev(r#""loadavg": [1, 2.5, 3]"#).loadavg,
            Some([1.0, 2.5, 3.0])
        );
        assert_eq!(
            ev(r#""current": 1, "total": {"a": [1, {}]}, "x": null"#)
                .uuid
                .as_deref(),
            Some("a")
        );
        // Escapes are decoded; duplicate keys keep the last, as Python's json.
        assert_eq!(
            ev(r#""args": "(\"\u00e9\\n\",)""#).args.as_deref(),
            Some("(\"é\\n\",)")
        );
        assert_eq!(ev(r#""name": "x", "name": "y""#).name.as_deref(), Some("y"));
        // Custom events carry the sender's own fields: a clash is dropped.
        let custom = r#"{"type": "task-progress", "hostname": "w", "timestamp": 1, "uuid": "u", "result": {"done": 1}, "retries": "many"}"#;
        let out = fixtures::decode(custom);
        assert_eq!(out[0].kind, EventKind::TaskCustom("progress".into()));
        assert_eq!((out[0].result.as_deref(), out[0].retries), (None, None));
        let other = r#"{"type": "worker-elect", "hostname": "w", "timestamp": 1, "uuid": 3}"#;
        assert_eq!(
            fixtures::decode(other)[0].kind,
            EventKind::Other("worker-elect".into())
        );
    }

    #[test]
    fn huge_strings_are_capped_at_a_char_boundary() {
        let big = "é".repeat(600_000); // 1.2 MB
        let body = with(&format!(
            r#""args": "{big}", "traceback": "{big}", "name": "{big}""#
        ));
        let (mut out, mut errors) = (Vec::new(), Vec::new());
        let info = decode_body(body.as_bytes(), &mut out, &mut errors);
        assert!(errors.is_empty());
        assert_eq!(info.truncated_fields, 3);
        let ev = &out[0];
        for (s, max) in [
            (ev.args.as_deref(), MAX_REPR_BYTES),
            (ev.traceback.as_deref(), MAX_TRACEBACK_BYTES),
            (ev.name.as_deref(), MAX_SHORT_BYTES),
        ] {
            let s = s.expect("kept");
            assert!(s.len() <= max && s.len() > max - 8, "{}", s.len());
            assert!(s.ends_with(TRUNCATION_MARKER));
        }
        let small = fixtures::decode(&with(r#""args": "(1,)""#));
        assert_eq!(small[0].args.as_deref(), Some("(1,)"));
    }

    #[test]
    fn real_examples_decode_field_for_field() {
        let failed = &fixtures::decode(&fixtures::scenario("rejected")[3]);
        assert_eq!(failed.len(), 2);
        assert_eq!(failed[0].kind, EventKind::TaskFailed);
        assert_eq!(failed[1].kind, EventKind::TaskRejected);
        assert_eq!(failed[1].requeue, Some(false));
        assert!(failed[0]
            .traceback
            .as_deref()
            .is_some_and(|t| t.ends_with("False)\n")));

        let sent = &fixtures::decode(&fixtures::scenario("success")[1])[0];
        assert_eq!(sent.kind, EventKind::TaskSent);
        assert_eq!(sent.hostname, "gen16362@vm");
        assert_eq!(
            sent.uuid.as_deref(),
            Some("c474f60e-2f1d-47da-9595-5084041a0790")
        );
        assert_eq!(sent.name.as_deref(), Some("tasks.add"));
        assert_eq!(sent.args.as_deref(), Some("(2, 3)"));
        assert_eq!(sent.queue.as_deref(), Some("celery"));
        assert_eq!(sent.exchange.as_deref(), Some(""));
        assert_eq!(
            (sent.parent_id.as_deref(), sent.eta.as_deref()),
            (None, None)
        );
        assert_eq!(
            (sent.clock, sent.pid, sent.retries),
            (Some(1), Some(16362), Some(0))
        );
        assert_eq!(sent.timestamp, 1795424223.9623947);

        let hb = &fixtures::decode(&fixtures::scenario("heartbeat_req")[0])[0];
        assert_eq!(hb.kind, EventKind::WorkerHeartbeat);
        assert_eq!((hb.freq, hb.active, hb.loadavg), (Some(5.0), None, None));
        let on = &fixtures::decode(&fixtures::scenario("online")[0])[0];
        assert_eq!(on.loadavg, Some([3.92, 3.22, 1.86]));
        assert_eq!(on.sw_ver.as_deref(), Some("5.7.0"));

        let revoked = &fixtures::decode(&fixtures::scenario("revoke_terminate")[3])[0];
        assert_eq!(revoked.signum.as_deref(), Some("15"));
        assert_eq!(
            (revoked.terminated, revoked.expired),
            (Some(true), Some(false))
        );
    }

    #[test]
    fn every_fixture_message_decodes_without_errors() {
        let mut n = 0;
        for name in fixtures::SCENARIOS {
            for body in fixtures::scenario(name) {
                n += fixtures::decode(&body).len();
            }
        }
        assert!(n >= 38, "{n}");
        for file in ["stream-basic.jsonl", "stream-mixed.jsonl"] {
            let msgs = fixtures::stream(file);
            assert!(!msgs.is_empty());
            let events: usize = msgs.iter().map(|(_, b)| fixtures::decode(b).len()).sum();
            assert!(events >= msgs.len(), "{file}: {events} events");
        }
    }
}
