//! Every Redis key and channel name celeriac reads or writes, in one place,
//! so kombu's `global_keyprefix` cannot be forgotten on one of them
//! (docs/celery-protocol.md §8.4).
//!
//! kombu prepends the prefix to the key of each command it sends (lists,
//! binding sets, the `unacked` hash) and to every pub/sub channel and
//! pattern; the values stored inside keys (binding members, `unacked`
//! entries) keep the bare queue names. Patterns celeriac sends itself
//! (`PSUBSCRIBE`, `SCAN MATCH`) escape the prefix, so a prefix with glob
//! characters matches only itself.

/// kombu's separator inside binding members and priority list names.
pub const SEP: &str = "\x06\x16";

const EVENTS_EXCHANGE: &str = "celeryev";
const PIDBOX_EXCHANGE: &str = "celery.pidbox";
const BINDING: &str = "_kombu.binding.";
const UNACKED: &str = "unacked";

/// The names of one broker: its `global_keyprefix` and database number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
    /// kombu's virtual host, which also names its fanout channels.
    db: i64,
}

impl Keys {
    pub fn new(prefix: &str, db: i64) -> Keys {
        Keys {
            prefix: prefix.to_string(),
            db,
        }
    }

    /// The list holding a queue's messages of one priority step (0: the
    /// queue's own name).
    pub fn list(&self, queue: &str, step: u8) -> String {
        if step == 0 {
            format!("{}{queue}", self.prefix)
        } else {
            format!("{}{queue}{SEP}{step}", self.prefix)
        }
    }

    /// The set of an exchange's bindings.
    pub fn binding(&self, exchange: &str) -> String {
        format!("{}{BINDING}{exchange}", self.prefix)
    }

    /// `SCAN MATCH` pattern for every binding set.
    pub fn bindings_pattern(&self) -> String {
        format!("{}{BINDING}*", glob_escape(&self.prefix))
    }

    /// kombu's hash of prefetched messages.
    pub fn unacked(&self) -> String {
        format!("{}{UNACKED}", self.prefix)
    }

    /// The channel pattern of kombu's fanout `celeryev` exchange (every
    /// routing key).
    pub fn events_pattern(&self) -> String {
        format!(
            "{}{}{EVENTS_EXCHANGE}/*",
            glob_escape(&self.prefix),
            fanout(self.db)
        )
    }

    /// The channel kombu publishes the fanout `celery.pidbox` exchange
    /// under (an empty routing key adds no suffix).
    pub fn pidbox_channel(&self) -> String {
        format!("{}{}{PIDBOX_EXCHANGE}", self.prefix, fanout(self.db))
    }
}

/// kombu's fanout prefix, `/{db}.`.
fn fanout(db: i64) -> String {
    format!("/{db}.")
}

/// `text` as a Redis glob pattern matching only itself.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_prefix_the_names_are_kombus_defaults() {
        let k = Keys::new("", 3);
        assert_eq!(k.list("celery", 0), "celery");
        assert_eq!(k.list("celery", 6), "celery\x06\x166");
        assert_eq!(k.binding("celery"), "_kombu.binding.celery");
        assert_eq!(k.bindings_pattern(), "_kombu.binding.*");
        assert_eq!(k.unacked(), "unacked");
        assert_eq!(k.events_pattern(), "/3.celeryev/*");
        assert_eq!(k.pidbox_channel(), "/3.celery.pidbox");
    }

    #[test]
    fn the_prefix_goes_before_every_key_and_channel() {
        let k = Keys::new("app1:", 0);
        assert_eq!(k.list("celery", 0), "app1:celery");
        assert_eq!(k.list("celery", 9), "app1:celery\x06\x169");
        assert_eq!(
            k.binding("reply.celery.pidbox"),
            "app1:_kombu.binding.reply.celery.pidbox"
        );
        assert_eq!(k.bindings_pattern(), "app1:_kombu.binding.*");
        assert_eq!(k.unacked(), "app1:unacked");
        assert_eq!(k.events_pattern(), "app1:/0.celeryev/*");
        assert_eq!(k.pidbox_channel(), "app1:/0.celery.pidbox");
    }

    #[test]
    fn glob_characters_of_a_prefix_match_only_themselves() {
        let k = Keys::new("a*[b]?", 1);
        assert_eq!(k.events_pattern(), r"a\*\[b\]\?/1.celeryev/*");
        assert_eq!(k.bindings_pattern(), r"a\*\[b\]\?_kombu.binding.*");
        // Names that are not patterns keep the prefix as it is.
        assert_eq!(k.pidbox_channel(), "a*[b]?/1.celery.pidbox");
    }
}
