//! The rows of `GET /api/tasks/export`: CSV (one header line, then one
//! record per task, RFC 4180 quoting) or NDJSON (one `/api/task/info`
//! object per line). Pure.

/// An export format, from `?format=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Ndjson,
}

impl Format {
    pub fn parse(s: Option<&str>) -> Result<Format, String> {
        match s.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(Format::Ndjson),
            Some(s) if s.eq_ignore_ascii_case("csv") => Ok(Format::Csv),
            Some(s) if s.eq_ignore_ascii_case("ndjson") || s.eq_ignore_ascii_case("jsonl") => {
                Ok(Format::Ndjson)
            }
            Some(other) => Err(format!("unknown format `{other}`: use `csv` or `ndjson`")),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Format::Csv => "tasks.csv",
            Format::Ndjson => "tasks.ndjson",
        }
    }

    /// What comes before the first task.
    pub fn header(self) -> Vec<u8> {
        match self {
            Format::Csv => record(COLUMNS.iter().map(|c| Some(c.to_string()))),
            Format::Ndjson => Vec::new(),
        }
    }

    /// One task.
    pub fn row(self, t: &api::Task) -> Vec<u8> {
        match self {
            Format::Csv => record(csv_values(t)),
            Format::Ndjson => {
                let mut line = serde_json::to_vec(t).unwrap_or_default();
                line.push(b'\n');
                line
            }
        }
    }
}

/// The CSV columns: `/api/task/info`'s fields, children as ids joined by
/// spaces.
pub const COLUMNS: [&str; 32] = [
    "uuid",
    "name",
    "state",
    "received",
    "sent",
    "started",
    "rejected",
    "succeeded",
    "failed",
    "retried",
    "revoked",
    "args",
    "kwargs",
    "eta",
    "expires",
    "retries",
    "result",
    "exception",
    "timestamp",
    "runtime",
    "traceback",
    "exchange",
    "routing_key",
    "clock",
    "client",
    "root_id",
    "parent_id",
    "children",
    "worker",
    "queue",
    "root",
    "parent",
];

fn csv_values(t: &api::Task) -> impl Iterator<Item = Option<String>> + '_ {
    let f = |v: Option<f64>| v.map(|v| v.to_string());
    let s = |v: &Option<String>| v.clone();
    [
        Some(t.uuid.clone()),
        s(&t.name),
        Some(t.state.as_str().to_owned()),
        f(t.received),
        f(t.sent),
        f(t.started),
        f(t.rejected),
        f(t.succeeded),
        f(t.failed),
        f(t.retried),
        f(t.revoked),
        s(&t.args),
        s(&t.kwargs),
        s(&t.eta),
        s(&t.expires),
        t.retries.map(|r| r.to_string()),
        s(&t.result),
        s(&t.exception),
        f(t.timestamp),
        f(t.runtime),
        s(&t.traceback),
        s(&t.exchange),
        s(&t.routing_key),
        t.clock.map(|c| c.to_string()),
        s(&t.client),
        s(&t.root_id),
        s(&t.parent_id),
        Some(t.children.join(" ")),
        s(&t.worker),
        s(&t.queue),
        s(&t.root),
        s(&t.parent),
    ]
    .into_iter()
}

/// One CSV record; an absent value is an empty field.
fn record(values: impl Iterator<Item = Option<String>>) -> Vec<u8> {
    let mut out = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let fields: Vec<String> = values.map(Option::unwrap_or_default).collect();
    // Writing to a Vec cannot fail.
    let _ = out.write_record(&fields);
    out.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::record::tests::task;

    #[test]
    fn formats_are_named_and_bad_ones_refused() {
        assert_eq!(Format::parse(None), Ok(Format::Ndjson));
        assert_eq!(Format::parse(Some("CSV")), Ok(Format::Csv));
        assert!(Format::parse(Some("xml")).unwrap_err().contains("`xml`"));
    }

    #[test]
    fn csv_quotes_what_needs_it_and_has_a_column_per_field() {
        let mut t = task("t1", api::TaskState::Failure, 2.5);
        t.args = Some("('a, b', \"q\")".into());
        t.traceback = Some("Traceback\nValueError".into());
        let header = String::from_utf8(Format::Csv.header()).unwrap();
        assert_eq!(header.trim_end().split(',').count(), COLUMNS.len());
        let row = String::from_utf8(Format::Csv.row(&t)).unwrap();
        assert!(row.starts_with("t1,,FAILURE,"), "{row}");
        assert!(row.contains(r#""('a, b', ""q"")""#), "{row}");
        assert!(row.contains("\"Traceback\nValueError\""), "{row}");
        assert!(row.ends_with("\r\n"));
        let text = header + &row;
        let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
        let rec = reader.records().next().unwrap().unwrap();
        assert_eq!(rec.len(), COLUMNS.len());
        assert_eq!(&rec[11], "('a, b', \"q\")");
    }

    #[test]
    fn ndjson_is_one_task_object_per_line() {
        let t = task("t1", api::TaskState::Success, 2.5);
        let line = Format::Ndjson.row(&t);
        assert_eq!(line.last(), Some(&b'\n'));
        let back: api::Task = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, t);
    }
}
