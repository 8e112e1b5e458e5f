//! Which store `--db` names.

use std::path::PathBuf;

/// A history store, as `--db` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The embedded store: a SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its connection URL.
    Postgres(String),
    /// Memory only.
    None,
}

impl Target {
    /// `none`, `postgres://…`/`postgresql://…`, `sqlite:PATH`/`sqlite://PATH`,
    /// or a bare path. Any other `scheme://` is refused rather than taken
    /// for a file name.
    pub fn parse(s: &str) -> Result<Target, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("empty: give a file path, `sqlite:PATH`, `postgres://…` or `none`".into());
        }
        if s.eq_ignore_ascii_case("none") {
            return Ok(Target::None);
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Target::Postgres(s.to_string()));
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(
                    "`sqlite:` needs a file path, e.g. `sqlite:/var/lib/celeriac/history.db`"
                        .into(),
                );
            }
            return Ok(Target::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(format!(
                "unsupported store `{scheme}://`: use a file path, `sqlite:PATH`, `postgres://…` or `none`"
            ));
        }
        Ok(Target::Sqlite(PathBuf::from(s)))
    }

    /// What the logs and `/readyz` say: the file, or the server without
    /// its password.
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite(p) => format!("sqlite:{}", p.display()),
            Target::Postgres(url) => crate::mask::mask_password(url),
            Target::None => "none".into(),
        }
    }

    /// The backend's short name, for `/readyz`.
    pub fn backend(&self) -> &'static str {
        match self {
            Target::Sqlite(_) => "sqlite",
            Target::Postgres(_) => "postgres",
            Target::None => "none",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_store() {
        let sqlite = |p: &str| Ok(Target::Sqlite(p.into()));
        assert_eq!(Target::parse("none"), Ok(Target::None));
        assert_eq!(Target::parse("/tmp/h.db"), sqlite("/tmp/h.db"));
        assert_eq!(Target::parse("h.db"), sqlite("h.db"));
        assert_eq!(Target::parse("sqlite:/tmp/h.db"), sqlite("/tmp/h.db"));
        assert_eq!(Target::parse("sqlite:///tmp/h.db"), sqlite("/tmp/h.db"));
        let pg = "postgresql://postgres@127.0.0.1/celeriac";
        assert_eq!(Target::parse(pg), Ok(Target::Postgres(pg.into())));
        assert!(Target::parse("mysql://x/y")
            .unwrap_err()
            .contains("`mysql://`"));
        assert!(Target::parse("sqlite:").is_err());
        assert!(Target::parse(" ").is_err());
    }

    #[test]
    fn the_description_hides_the_password() {
        let t = Target::parse("postgres://ann:s3cret@db/celeriac").unwrap();
        assert!(!t.describe().contains("s3cret"), "{}", t.describe());
    }
}
