//! The protocol-2 task message a Celery 5.7 client publishes with the json
//! serializer (docs/celery-protocol.md §7.1): headers in Celery's order and
//! with its AMQP types, properties, and the `[args, kwargs, embed]` body.

use serde_json::{json, Map, Value};

/// An AMQP header value, typed as py-amqp encodes Celery's Python values.
#[derive(Debug, Clone, PartialEq)]
pub enum Header {
    /// `None` (`V`).
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Header>),
    /// A nested table, in order.
    Table(Vec<(String, Header)>),
}

impl Header {
    fn opt_str(s: &Option<String>) -> Header {
        s.as_ref().map_or(Header::Null, |s| Header::Str(s.clone()))
    }

    fn opt_float(f: Option<f64>) -> Header {
        f.map_or(Header::Null, |f| {
            // Python sends an int time limit as an int.
            if f.fract() == 0.0 && f.abs() < 1e15 {
                Header::Int(f as i64)
            } else {
                Header::Float(f)
            }
        })
    }
}

/// Where a message is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub exchange: String,
    pub routing_key: String,
}

impl Route {
    /// A direct queue: Celery publishes to the default exchange with the
    /// queue's name as routing key.
    pub fn queue(name: &str) -> Route {
        Route {
            exchange: String::new(),
            routing_key: name.to_string(),
        }
    }
}

/// One task message, everything a client decides.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskMessage {
    pub id: String,
    pub name: String,
    pub args: Vec<Value>,
    pub kwargs: Map<String, Value>,
    /// What events will show as `args`/`kwargs`.
    pub argsrepr: String,
    pub kwargsrepr: String,
    pub route: Route,
    /// ISO 8601, as Celery writes `eta`/`expires`.
    pub eta: Option<String>,
    pub expires: Option<String>,
    /// The `expiration` property (per-message TTL), milliseconds.
    pub expiration_ms: Option<u64>,
    pub priority: Option<u8>,
    pub retries: i64,
    pub time_limit: Option<f64>,
    pub soft_time_limit: Option<f64>,
    pub root_id: String,
    pub parent_id: Option<String>,
    /// The producer's nodename.
    pub origin: String,
    /// The client's oid; only the `rpc://` result backend reads it.
    pub reply_to: String,
}

impl TaskMessage {
    /// A top-level task (its own root, no parent) with no options.
    pub fn new(
        id: String,
        name: String,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
        route: Route,
        origin: String,
        reply_to: String,
    ) -> TaskMessage {
        TaskMessage {
            argsrepr: crate::pyrepr::render_args(&args),
            kwargsrepr: crate::pyrepr::render(&Value::Object(kwargs.clone())),
            root_id: id.clone(),
            id,
            name,
            args,
            kwargs,
            route,
            eta: None,
            expires: None,
            expiration_ms: None,
            priority: None,
            retries: 0,
            time_limit: None,
            soft_time_limit: None,
            parent_id: None,
            origin,
            reply_to,
        }
    }

    /// The headers, in Celery's order.
    pub fn headers(&self) -> Vec<(&'static str, Header)> {
        vec![
            ("lang", Header::Str("py".into())),
            ("task", Header::Str(self.name.clone())),
            ("id", Header::Str(self.id.clone())),
            ("shadow", Header::Null),
            ("eta", Header::opt_str(&self.eta)),
            ("expires", Header::opt_str(&self.expires)),
            ("group", Header::Null),
            ("group_index", Header::Null),
            ("retries", Header::Int(self.retries)),
            (
                "timelimit",
                Header::Array(vec![
                    Header::opt_float(self.time_limit),
                    Header::opt_float(self.soft_time_limit),
                ]),
            ),
            ("root_id", Header::Str(self.root_id.clone())),
            ("parent_id", Header::opt_str(&self.parent_id)),
            ("argsrepr", Header::Str(self.argsrepr.clone())),
            ("kwargsrepr", Header::Str(self.kwargsrepr.clone())),
            ("origin", Header::Str(self.origin.clone())),
            ("ignore_result", Header::Bool(false)),
            ("replaced_task_nesting", Header::Int(0)),
            ("stamped_headers", Header::Null),
            ("stamps", Header::Table(Vec::new())),
        ]
    }

    /// The json body: `[args, kwargs, embed]`.
    pub fn body(&self) -> Vec<u8> {
        let body = json!([
            self.args,
            self.kwargs,
            {"callbacks": null, "errbacks": null, "chain": null, "chord": null}
        ]);
        serde_json::to_vec(&body).unwrap_or_default()
    }

    pub const CONTENT_TYPE: &'static str = "application/json";
    pub const CONTENT_ENCODING: &'static str = "utf-8";
    pub const DELIVERY_MODE: u8 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> TaskMessage {
        TaskMessage::new(
            "id-1".into(),
            "tasks.add".into(),
            vec![json!(2), json!(3)],
            Map::new(),
            Route::queue("celery"),
            "celeriac@vm".into(),
            "oid".into(),
        )
    }

    /// `add.delay(2, 3)` as captured from Celery 5.7 (§7.2).
    #[test]
    fn matches_a_captured_celery_message() {
        let m = message();
        let names: Vec<&str> = m.headers().iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "lang",
                "task",
                "id",
                "shadow",
                "eta",
                "expires",
                "group",
                "group_index",
                "retries",
                "timelimit",
                "root_id",
                "parent_id",
                "argsrepr",
                "kwargsrepr",
                "origin",
                "ignore_result",
                "replaced_task_nesting",
                "stamped_headers",
                "stamps"
            ]
        );
        let h: std::collections::HashMap<_, _> = m.headers().into_iter().collect();
        assert_eq!(h["argsrepr"], Header::Str("(2, 3)".into()));
        assert_eq!(h["kwargsrepr"], Header::Str("{}".into()));
        assert_eq!(h["root_id"], Header::Str("id-1".into()));
        assert_eq!(h["parent_id"], Header::Null);
        assert_eq!(h["retries"], Header::Int(0));
        assert_eq!(
            h["timelimit"],
            Header::Array(vec![Header::Null, Header::Null])
        );
        let body: Value = serde_json::from_slice(&m.body()).unwrap();
        assert_eq!(
            body,
            json!([[2, 3], {}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}])
        );
    }

    #[test]
    fn time_limits_keep_python_types() {
        let mut m = message();
        m.time_limit = Some(20.0);
        m.soft_time_limit = Some(2.5);
        let h: std::collections::HashMap<_, _> = m.headers().into_iter().collect();
        assert_eq!(
            h["timelimit"],
            Header::Array(vec![Header::Int(20), Header::Float(2.5)])
        );
    }
}
