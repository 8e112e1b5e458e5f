//! Who may enter after signing in, and with which role: `--oidc-operators`
//! and `--oidc-viewers` as emails, `*@domain` patterns and group names.
//! Pure.

use crate::auth::Role;

/// One entry of an access list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// An exact address (compared case-insensitively).
    Email(String),
    /// `*@example.com`: any address at that domain (not its subdomains).
    Domain(String),
    /// A value of the groups claim (compared exactly: providers treat
    /// group names as case-sensitive).
    Group(String),
}

fn parse_entry(s: &str) -> Option<Entry> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Some(if let Some(domain) = s.strip_prefix("*@") {
        Entry::Domain(domain.to_ascii_lowercase())
    } else if s.contains('@') {
        Entry::Email(s.to_ascii_lowercase())
    } else {
        Entry::Group(s.to_string())
    })
}

/// What the provider told about the user, as far as access goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Who<'a> {
    /// Only a verified email (or one the provider does not mark
    /// unverified) is given here: an unverified address must not match a
    /// domain pattern.
    pub email: Option<&'a str>,
    pub groups: &'a [String],
}

/// The operators' and viewers' lists.
#[derive(Debug, Clone, Default)]
pub struct Access {
    operators: Vec<Entry>,
    viewers: Vec<Entry>,
}

impl Access {
    pub fn new(operators: &[String], viewers: &[String]) -> Access {
        let list = |v: &[String]| v.iter().filter_map(|s| parse_entry(s)).collect();
        Access {
            operators: list(operators),
            viewers: list(viewers),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.operators.is_empty() && self.viewers.is_empty()
    }

    /// The role of `who`: operator if any operator entry matches, else
    /// viewer if a viewer entry does, else None (not allowed).
    pub fn role(&self, who: &Who<'_>) -> Option<Role> {
        let email = who.email.map(str::to_ascii_lowercase);
        let matches = |e: &Entry| match e {
            Entry::Email(addr) => email.as_deref() == Some(addr.as_str()),
            Entry::Domain(d) => email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .is_some_and(|(_, domain)| domain == d),
            Entry::Group(g) => who.groups.iter().any(|x| x == g),
        };
        if self.operators.iter().any(matches) {
            Some(Role::Operator)
        } else if self.viewers.iter().any(matches) {
            Some(Role::Viewer)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn emails_domains_and_groups() {
        let a = Access::new(
            &s(&["ops-team", "Boss@Example.com"]),
            &s(&["*@example.com", " ", "readers"]),
        );
        let no_groups: Vec<String> = vec![];
        let ops = s(&["ops-team"]);
        let role = |email: Option<&str>, groups: &[String]| a.role(&Who { email, groups });
        assert_eq!(
            role(Some("boss@example.com"), &no_groups),
            Some(Role::Operator)
        );
        assert_eq!(
            role(Some("ann@example.com"), &no_groups),
            Some(Role::Viewer)
        );
        // A group outranks the domain's viewer entry.
        assert_eq!(role(Some("ann@example.com"), &ops), Some(Role::Operator));
        assert_eq!(role(None, &ops), Some(Role::Operator));
        assert_eq!(role(None, &s(&["readers"])), Some(Role::Viewer));
        // Subdomains, look-alike domains and group case do not match.
        assert_eq!(role(Some("x@eu.example.com"), &no_groups), None);
        assert_eq!(role(Some("x@example.com.evil.io"), &no_groups), None);
        assert_eq!(role(Some("x@evil.io"), &s(&["Ops-Team"])), None);
        assert_eq!(role(None, &no_groups), None);
        assert!(!a.is_empty());
        assert!(Access::new(&[], &s(&[""])).is_empty());
    }
}
