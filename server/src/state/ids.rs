//! Task ids. Celery's are canonical lowercase hyphenated UUIDs: those are
//! indexed by their 128-bit value and their text is stored inline, so an id
//! costs no allocation. Anything else is kept as a string.

/// How an id is looked up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Uuid(u128),
    Other(Box<str>),
}

/// An id's text, stored without a heap allocation for canonical UUIDs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdText {
    /// ASCII of a canonical UUID (checked by [`parse_uuid`]).
    Uuid([u8; 36]),
    Other(Box<str>),
}

impl IdText {
    pub fn new(s: &str) -> IdText {
        match <[u8; 36]>::try_from(s.as_bytes()) {
            Ok(b) if parse_uuid(s).is_some() => IdText::Uuid(b),
            _ => IdText::Other(s.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // Only ASCII hex and hyphens are stored here, so this never fails.
            IdText::Uuid(b) => std::str::from_utf8(b).unwrap_or(""),
            IdText::Other(s) => s,
        }
    }

    pub fn key(&self) -> Key {
        key_of(self.as_str())
    }

    pub fn is(&self, s: &str) -> bool {
        self.as_str() == s
    }
}

pub fn key_of(s: &str) -> Key {
    match parse_uuid(s) {
        Some(u) => Key::Uuid(u),
        None => Key::Other(s.into()),
    }
}

/// The value of a canonical lowercase `8-4-4-4-12` UUID; `None` for any other
/// spelling, so that the stored text always round-trips exactly.
pub fn parse_uuid(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            if c != b'-' {
                return None;
            }
            continue;
        }
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uuids_are_inline_others_are_strings() {
        let u = "c474f60e-2f1d-47da-9595-5084041a0790";
        assert_eq!(parse_uuid(u), Some(0xc474f60e_2f1d_47da_9595_5084041a0790));
        assert!(matches!(IdText::new(u), IdText::Uuid(_)));
        assert_eq!(IdText::new(u).as_str(), u);
        for other in [
            "C474F60E-2F1D-47DA-9595-5084041A0790",
            "c474f60e2f1d47da95955084041a0790",
            "my-task-1",
            "",
            "c474f60e-2f1d-47da-9595-5084041a079g",
        ] {
            assert_eq!(parse_uuid(other), None, "{other}");
            assert_eq!(IdText::new(other).as_str(), other);
            assert_eq!(key_of(other), Key::Other(other.into()));
        }
    }
}
