//! Browser sessions after an OpenID Connect sign-in: a signed cookie that
//! carries who signed in and until when, a server-side list of sessions
//! ended early (sign-out), and the CSRF token bound to each session.
//!
//! The cookie is `base64url(JSON claims) "." base64url(HMAC-SHA256)`.
//! Nothing in it is secret (the user can read their own email), but
//! nothing in it can be changed without the key. The key comes from
//! `--session-secret-file`, or is drawn at random per process, in which
//! case every session ends when celeriac restarts.
//!
//! Pure but for the key's source: time enters as `now` (Unix seconds).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Principal, Role};

pub const DEFAULT_SESSION_TTL: &str = "12h";
/// The session cookie (HttpOnly).
pub const SESSION_COOKIE: &str = "celeriac_session";
/// The CSRF cookie, readable by the dashboard's script, which echoes it in
/// `X-CSRF-Token` (double submit).
pub const CSRF_COOKIE: &str = "celeriac_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A bound on the revocation list, so that sign-outs cannot grow it
/// without end. Dropping an unexpired entry would revive that session, so
/// beyond the bound a sign-out is refused instead ([`Sessions::revoke`]).
const MAX_REVOKED: usize = 100_000;

#[derive(Debug, Clone, clap::Args)]
pub struct SessionArgs {
    /// How long a browser session lasts after signing in (e.g. `12h`,
    /// `30m`).
    #[arg(long, env = "CELERIAC_SESSION_TTL", default_value = DEFAULT_SESSION_TTL,
          value_parser = parse_duration, value_name = "DURATION")]
    pub session_ttl: Duration,

    /// A file holding the key that signs session cookies (at least 32
    /// bytes). Without it a random key is drawn at start-up, so sessions
    /// end when celeriac restarts, and replicas do not share them.
    #[arg(long, env = "CELERIAC_SESSION_SECRET_FILE", value_name = "FILE")]
    pub session_secret_file: Option<PathBuf>,
}

/// `90s`, `30m`, `12h`, `7d`, or bare seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a duration like 12h or 30m, got {s:?}"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("unknown unit in {s:?} (s, m, h or d)")),
    };
    if secs == 0 {
        return Err("a session must last at least one second".into());
    }
    Ok(Duration::from_secs(secs))
}

/// Who a session belongs to, as the cookie carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionClaims {
    /// The session id: random, what sign-out revokes.
    pub sid: String,
    /// The provider's subject (`sub`), stable for the user.
    pub sub: String,
    pub email: Option<String>,
    /// What to call the user (email, else name, else subject).
    pub name: String,
    pub role: Role,
    /// Unix seconds.
    pub exp: u64,
}

impl SessionClaims {
    pub fn principal(&self) -> Principal {
        Principal {
            name: self.name.clone(),
            role: self.role,
            session: Some(super::SessionIdentity {
                subject: self.sub.clone(),
                email: self.email.clone(),
            }),
        }
    }
}

/// Why a session cookie was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("malformed session cookie")]
    Malformed,
    #[error("session cookie signature does not match")]
    BadSignature,
    #[error("session expired")]
    Expired,
    #[error("signed out")]
    Revoked,
}

/// The key, the lifetime and the sessions ended early.
pub struct Sessions {
    key: Vec<u8>,
    pub ttl: Duration,
    /// sid → expiry; kept until the session would have expired anyway.
    revoked: parking_lot::Mutex<HashMap<String, u64>>,
}

impl Sessions {
    /// The key from `--session-secret-file`, else a random one.
    pub fn from_args(args: &SessionArgs) -> Result<Sessions, String> {
        let key = match &args.session_secret_file {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    format!("--session-secret-file: cannot read {}: {e}", path.display())
                })?;
                let trimmed = bytes.trim_ascii();
                if trimmed.len() < 32 {
                    return Err(format!(
                        "--session-secret-file: {} holds {} bytes; at least 32 are needed \
                         (e.g. `head -c 48 /dev/urandom | base64 > FILE`)",
                        path.display(),
                        trimmed.len()
                    ));
                }
                trimmed.to_vec()
            }
            None => random_bytes(32),
        };
        Ok(Sessions::with_key(key, args.session_ttl))
    }

    pub fn with_key(key: Vec<u8>, ttl: Duration) -> Sessions {
        Sessions {
            key,
            ttl,
            revoked: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    fn mac(&self, purpose: &[u8], data: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(purpose);
        mac.update(&[0]);
        mac.update(data);
        mac
    }

    /// Claims for a new session that starts at `now`, with a fresh id.
    pub fn claims(
        &self,
        sub: String,
        email: Option<String>,
        name: String,
        role: Role,
        now: u64,
    ) -> SessionClaims {
        SessionClaims {
            sid: B64.encode(random_bytes(18)),
            sub,
            email,
            name,
            role,
            exp: now + self.ttl.as_secs(),
        }
    }

    /// The cookie value for `claims`.
    pub fn seal(&self, claims: &SessionClaims) -> String {
        let payload = B64.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let sig = self
            .mac(b"session", payload.as_bytes())
            .finalize()
            .into_bytes();
        format!("{payload}.{}", B64.encode(sig))
    }

    /// The claims of a cookie value that is intact, unexpired and not
    /// signed out.
    pub fn open(&self, cookie: &str, now: u64) -> Result<SessionClaims, SessionError> {
        let (payload, sig) = cookie.split_once('.').ok_or(SessionError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| SessionError::Malformed)?;
        // Constant-time comparison inside `verify_slice`.
        self.mac(b"session", payload.as_bytes())
            .verify_slice(&sig)
            .map_err(|_| SessionError::BadSignature)?;
        let json = B64.decode(payload).map_err(|_| SessionError::Malformed)?;
        let claims: SessionClaims =
            serde_json::from_slice(&json).map_err(|_| SessionError::Malformed)?;
        if claims.exp <= now {
            return Err(SessionError::Expired);
        }
        if self.revoked.lock().contains_key(&claims.sid) {
            return Err(SessionError::Revoked);
        }
        Ok(claims)
    }

    /// Ends a session before its expiry. False when the list is full of
    /// unexpired sessions (then the caller says sign-out failed rather
    /// than pretending).
    pub fn revoke(&self, claims: &SessionClaims, now: u64) -> bool {
        let mut revoked = self.revoked.lock();
        revoked.retain(|_, exp| *exp > now);
        if revoked.len() >= MAX_REVOKED {
            return false;
        }
        revoked.insert(claims.sid.clone(), claims.exp);
        true
    }

    /// How many sign-outs are remembered.
    pub fn revoked_count(&self) -> usize {
        self.revoked.lock().len()
    }

    /// The CSRF token of a session: derived from its id with the key, so
    /// it cannot be forged and needs no storage.
    pub fn csrf_token(&self, sid: &str) -> String {
        B64.encode(self.mac(b"csrf", sid.as_bytes()).finalize().into_bytes())
    }

    /// Whether `presented` is the CSRF token of session `sid`.
    pub fn csrf_ok(&self, sid: &str, presented: &str) -> bool {
        match B64.decode(presented.trim()) {
            Ok(sig) => self.mac(b"csrf", sid.as_bytes()).verify_slice(&sig).is_ok(),
            Err(_) => false,
        }
    }

    /// Signs `data` for a short-lived value the server hands the browser
    /// (the pending sign-in's cookie).
    pub fn sign(&self, purpose: &str, data: &str) -> String {
        let sig = self
            .mac(purpose.as_bytes(), data.as_bytes())
            .finalize()
            .into_bytes();
        format!("{data}.{}", B64.encode(sig))
    }

    /// `data` if `signed` came from [`Sessions::sign`] with this purpose.
    pub fn verify<'a>(&self, purpose: &str, signed: &'a str) -> Option<&'a str> {
        let (data, sig) = signed.rsplit_once('.')?;
        let sig = B64.decode(sig).ok()?;
        self.mac(purpose.as_bytes(), data.as_bytes())
            .verify_slice(&sig)
            .ok()?;
        Some(data)
    }
}

/// Bytes from the operating system's CSPRNG.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS random source");
    buf
}

/// A cookie's value from a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Sessions {
        Sessions::with_key(b"k".repeat(32), Duration::from_secs(3600))
    }

    fn claims(s: &Sessions, now: u64) -> SessionClaims {
        s.claims(
            "sub-1".into(),
            Some("ann@example.com".into()),
            "ann@example.com".into(),
            Role::Operator,
            now,
        )
    }

    #[test]
    fn a_sealed_session_opens_until_it_expires() {
        let s = sessions();
        let c = claims(&s, 1000);
        let cookie = s.seal(&c);
        assert_eq!(s.open(&cookie, 1000).unwrap(), c);
        assert_eq!(s.open(&cookie, 1000 + 3599).unwrap(), c);
        assert_eq!(s.open(&cookie, 1000 + 3600), Err(SessionError::Expired));
        let p = c.principal();
        assert_eq!(p.name, "ann@example.com");
        assert_eq!(p.session.unwrap().subject, "sub-1");
    }

    #[test]
    fn tampering_or_another_key_is_refused() {
        let s = sessions();
        let c = claims(&s, 1000);
        let cookie = s.seal(&c);
        // Promote a viewer by rewriting the payload: the signature no
        // longer matches.
        let mut forged = c.clone();
        forged.role = Role::Viewer;
        let forged_payload = s.seal(&forged);
        let spliced = format!(
            "{}.{}",
            forged_payload.split_once('.').unwrap().0,
            cookie.split_once('.').unwrap().1
        );
        assert_eq!(s.open(&spliced, 1000), Err(SessionError::BadSignature));
        let other = Sessions::with_key(b"x".repeat(32), Duration::from_secs(3600));
        assert_eq!(other.open(&cookie, 1000), Err(SessionError::BadSignature));
        assert_eq!(s.open("garbage", 1000), Err(SessionError::Malformed));
        assert_eq!(s.open("a.!!!", 1000), Err(SessionError::Malformed));
        // Two sessions of the same user differ.
        assert_ne!(claims(&s, 1000).sid, c.sid);
    }

    #[test]
    fn revocation_lasts_until_expiry() {
        let s = sessions();
        let c = claims(&s, 1000);
        let cookie = s.seal(&c);
        assert!(s.revoke(&c, 1001));
        assert_eq!(s.open(&cookie, 1002), Err(SessionError::Revoked));
        // Expired entries are pruned on the next sign-out.
        let d = claims(&s, 5000);
        assert!(s.revoke(&d, 5000));
        assert_eq!(s.revoked_count(), 1);
    }

    #[test]
    fn csrf_tokens_are_bound_to_the_session() {
        let s = sessions();
        let t = s.csrf_token("sid-a");
        assert!(s.csrf_ok("sid-a", &t));
        assert!(!s.csrf_ok("sid-b", &t));
        assert!(!s.csrf_ok("sid-a", ""));
        assert!(!s.csrf_ok("sid-a", "not base64 !"));
    }

    #[test]
    fn signed_values_and_cookies_and_durations() {
        let s = sessions();
        let v = s.sign("login", "state-123");
        assert_eq!(s.verify("login", &v), Some("state-123"));
        assert_eq!(s.verify("other", &v), None);
        assert_eq!(s.verify("login", "state-124.x"), None);
        assert_eq!(
            cookie("a=1; celeriac_session=xyz.q; b=2", SESSION_COOKIE),
            Some("xyz.q")
        );
        assert_eq!(cookie("a=1", SESSION_COOKIE), None);
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43200));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("3w").unwrap_err().contains("unit"));
        assert!(parse_duration("h").is_err());
    }
}
