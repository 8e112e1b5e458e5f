//! Who may do what: users with roles, from `--basic-auth`
//! (operators), `--viewer` (read only), a users file of hashed passwords
//! (`--users`), and bearer tokens (`--api-token`, `read:` or `control:`
//! scoped; a bare token controls).
//!
//! Secrets never reach a log line or a `Debug` print: [`Secret`] and
//! [`Credential`] print `********`. Plain passwords and tokens are compared
//! as SHA-256 digests with `subtle` (constant time, no length leak); hashed
//! passwords are verified with argon2 or bcrypt, off the async workers, and
//! a successful check is remembered (as a salted digest) so that a browser
//! re-sending Basic credentials does not pay for the hash every request.

mod args;
pub mod session;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use args::AuthArgs;
pub use session::{SessionArgs, Sessions};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, controls nothing.
    Viewer,
    /// Reads and controls.
    Operator,
}

impl Role {
    /// The name on the wire (`/api/me`, the audit log).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" | "read" | "readonly" | "read-only" => Some(Role::Viewer),
            "operator" | "admin" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// Who made a request, put in the request's extensions by the middleware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// Set when the request came with a browser session from an OpenID
    /// Connect sign-in.
    pub session: Option<SessionIdentity>,
}

/// Who signed in through the identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionIdentity {
    /// The provider's `sub`: stable even when the email changes.
    pub subject: String,
    pub email: Option<String>,
}

impl Principal {
    /// An audit entry for `command` asked by this principal at `now`: the
    /// caller fills in the target, status and replies (the log assigns the
    /// id when it records it).
    pub fn audit_entry(
        &self,
        now: f64,
        command: impl Into<String>,
        arguments: serde_json::Value,
    ) -> api::control::AuditEntry {
        api::control::AuditEntry {
            id: 0,
            time: now,
            user: self.audit_name(),
            role: self.role.as_str().to_string(),
            command: command.into(),
            arguments,
            target: serde_json::Value::Null,
            status: 0,
            replies: serde_json::Value::Null,
            no_reply: Vec::new(),
        }
    }

    /// The name the audit log records: for a signed-in user the email and
    /// the provider's subject (the email can change hands, the subject
    /// cannot), e.g. `ann@example.com (oidc sub 248289761001)`.
    pub fn audit_name(&self) -> String {
        match &self.session {
            None => self.name.clone(),
            Some(s) => format!(
                "{} (oidc sub {})",
                s.email.as_deref().unwrap_or(&self.name),
                s.subject
            ),
        }
    }

    /// With no users configured every request is this operator.
    pub fn anonymous() -> Principal {
        Principal::new("anonymous", Role::Operator)
    }

    /// A principal authenticated by password or token.
    pub fn new(name: impl Into<String>, role: Role) -> Principal {
        Principal {
            name: name.into(),
            role,
            session: None,
        }
    }
}

/// A secret string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"********\"")
    }
}

/// `user:password` from `--basic-auth` or `--viewer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: String,
    pub password: Secret,
}

/// clap value parser for `user:password`.
pub fn parse_credential(s: &str) -> Result<Credential, String> {
    match s.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => Ok(Credential {
            user: user.to_string(),
            password: Secret::new(password),
        }),
        _ => Err("expected USER:PASSWORD (both non-empty)".into()),
    }
}

/// What a bearer token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// GET and HEAD only: a viewer.
    Read,
    /// Everything an operator may do.
    Control,
}

impl Scope {
    pub fn role(self) -> Role {
        match self {
            Scope::Read => Role::Viewer,
            Scope::Control => Role::Operator,
        }
    }
}

/// `--api-token [read:|control:]TOKEN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub scope: Scope,
    pub token: Secret,
}

/// clap value parser for `--api-token`: a `read:` or `control:` prefix
/// sets the scope; without one the token controls, as tokens always did.
pub fn parse_token(s: &str) -> Result<ApiToken, String> {
    let (scope, token) = if let Some(t) = s.strip_prefix("read:") {
        (Scope::Read, t)
    } else if let Some(t) = s.strip_prefix("control:") {
        (Scope::Control, t)
    } else {
        (Scope::Control, s)
    };
    if token.len() < 16 {
        return Err("an API token must be at least 16 characters".into());
    }
    Ok(ApiToken {
        scope,
        token: Secret::new(token),
    })
}

/// The name a token goes by in the audit log and the logs: the first 8
/// hex digits of its SHA-256, stable across restarts and reorderings, and
/// useless for guessing the token.
pub fn token_id(token: &str) -> String {
    let d: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let hex: String = d[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("token:{hex}")
}

/// One line of a users file.
#[derive(Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub user: String,
    pub hash: String,
    pub role: Role,
    /// SHA-256 digests of bearer tokens that act as this user.
    pub tokens: Vec<[u8; 32]>,
}

impl fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserEntry")
            .field("user", &self.user)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A users file, read and checked at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersFile {
    pub path: PathBuf,
    pub users: Vec<UserEntry>,
}

/// clap value parser for `--users FILE`: lines `user:hash[:role[:tokens]]`,
/// `#` comments and blank lines ignored; `hash` is an argon2 PHC string
/// (`$argon2id$...`) or a bcrypt hash (`$2b$...`, as `htpasswd -B` writes);
/// `role` is `operator` or `viewer` (the default); `tokens` is a comma list
/// of `sha256=HEX`, the SHA-256 of bearer tokens that act as this user with
/// this role (the file holds no secret in clear). Neither hash format
/// contains `:`, so the fourth field is unambiguous.
pub fn parse_users_file(path: &str) -> Result<UsersFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_users(&text)
        .map(|users| UsersFile {
            path: PathBuf::from(path),
            users,
        })
        .map_err(|e| format!("{path}: {e}"))
}

pub fn parse_users(text: &str) -> Result<Vec<UserEntry>, String> {
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = i + 1;
        let mut parts = line.splitn(4, ':');
        let user = parts.next().unwrap_or_default().trim();
        let hash = parts.next().unwrap_or_default().trim();
        let role = match parts.next() {
            None => Role::Viewer,
            Some(r) => Role::parse(r)
                .ok_or_else(|| format!("line {n}: unknown role `{r}` (operator or viewer)"))?,
        };
        let tokens = match parts.next() {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(parse_token_digest)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("line {n}: user `{user}`: {e}"))?,
        };
        if user.is_empty() {
            return Err(format!("line {n}: expected user:hash[:role[:tokens]]"));
        }
        if !(hash.starts_with("$argon2") || is_bcrypt(hash)) {
            return Err(format!(
                "line {n}: user `{user}`: the password must be an argon2 or bcrypt hash"
            ));
        }
        if hash.starts_with("$argon2") {
            argon2::PasswordHash::new(hash)
                .map_err(|e| format!("line {n}: user `{user}`: invalid argon2 hash: {e}"))?;
        }
        users.push(UserEntry {
            user: user.to_string(),
            hash: hash.to_string(),
            role,
            tokens,
        });
    }
    Ok(users)
}

/// `sha256=` and 64 hex digits.
fn parse_token_digest(s: &str) -> Result<[u8; 32], String> {
    let bad =
        || format!("a token must be sha256=<64 hex digits> (`sha256sum` of the token), got `{s}`");
    let hex = s.strip_prefix("sha256=").ok_or_else(bad)?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2x$", "$2y$"]
        .iter()
        .any(|p| hash.starts_with(p))
}

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize().into()
}

#[derive(Clone)]
enum Check {
    /// SHA-256 of the password.
    Plain([u8; 32]),
    Hash(String),
}

struct Account {
    role: Role,
    check: Check,
}

/// The configured users and tokens, and the policy flags.
pub struct Auth {
    accounts: HashMap<String, Account>,
    /// (label, role, SHA-256 of the token)
    tokens: Vec<(String, Role, [u8; 32])>,
    /// Users-file tokens: (user, role, plain SHA-256 of the token).
    file_tokens: Vec<(String, Role, [u8; 32])>,
    pub read_only: bool,
    pub open_metrics: bool,
    /// OpenID Connect sign-in is configured: requests need credentials
    /// even without Basic users or tokens.
    pub sign_in: bool,
    /// Digests of (user, password) pairs whose hash already verified,
    /// salted per process.
    verified: parking_lot::Mutex<HashMap<String, [u8; 32]>>,
    salt: [u8; 16],
}

/// The credentials a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Basic { user: String, password: Secret },
    Bearer(Secret),
}

impl Auth {
    pub fn from_args(args: &AuthArgs) -> Auth {
        let mut accounts = HashMap::new();
        let mut file_tokens = Vec::new();
        if let Some(file) = &args.users {
            for u in &file.users {
                for t in &u.tokens {
                    file_tokens.push((u.user.clone(), u.role, *t));
                }
                accounts.insert(
                    u.user.clone(),
                    Account {
                        role: u.role,
                        check: Check::Hash(u.hash.clone()),
                    },
                );
            }
        }
        // Flags win over the file for the same name.
        let flags = args
            .viewer
            .iter()
            .map(|c| (c, Role::Viewer))
            .chain(args.basic_auth.iter().map(|c| (c, Role::Operator)));
        for (c, role) in flags {
            accounts.insert(
                c.user.clone(),
                Account {
                    role,
                    check: Check::Plain(digest(&[c.password.expose().as_bytes()])),
                },
            );
        }
        let tokens = args
            .api_token
            .iter()
            .map(|t| {
                (
                    token_id(t.token.expose()),
                    t.scope.role(),
                    digest(&[t.token.expose().as_bytes()]),
                )
            })
            .collect();
        let mut salt = [0u8; 16];
        for b in salt.iter_mut() {
            *b = fastrand::u8(..);
        }
        Auth {
            accounts,
            tokens,
            file_tokens,
            read_only: args.read_only,
            open_metrics: args.open_metrics,
            sign_in: false,
            verified: parking_lot::Mutex::new(HashMap::new()),
            salt,
        }
    }

    /// False when nobody is configured: then everything is served to
    /// everyone (with a loud warning).
    pub fn enabled(&self) -> bool {
        self.sign_in
            || !self.accounts.is_empty()
            || !self.tokens.is_empty()
            || !self.file_tokens.is_empty()
    }

    /// Whether any user signs in with a password (then a 401 invites Basic
    /// credentials).
    pub fn has_passwords(&self) -> bool {
        !self.accounts.is_empty()
    }

    /// How many users and tokens there are, for the start-up log.
    pub fn summary(&self) -> String {
        let ops = self
            .accounts
            .values()
            .filter(|a| a.role == Role::Operator)
            .count();
        format!(
            "{} operator(s), {} viewer(s), {} API token(s)",
            ops,
            self.accounts.len() - ops,
            self.tokens.len() + self.file_tokens.len()
        )
    }

    /// Checks presented credentials; None when they are wrong. Hash checks
    /// run on the blocking pool.
    pub async fn authenticate(&self, presented: &Presented) -> Option<Principal> {
        match presented {
            Presented::Bearer(token) => {
                let d = digest(&[token.expose().as_bytes()]);
                // Every token is compared, so timing does not tell which matched.
                let mut found = None;
                for (label, role, t) in &self.tokens {
                    if bool::from(t.ct_eq(&d)) && found.is_none() {
                        found = Some((label.clone(), *role));
                    }
                }
                // Users-file tokens are stored as plain SHA-256 (what
                // `sha256sum` prints), and act as their user.
                let plain: [u8; 32] = Sha256::digest(token.expose().as_bytes()).into();
                for (user, role, t) in &self.file_tokens {
                    if bool::from(t.ct_eq(&plain)) && found.is_none() {
                        let id = token_id(token.expose());
                        found = Some((format!("{user} ({id})"), *role));
                    }
                }
                found.map(|(name, role)| Principal::new(name, role))
            }
            Presented::Basic { user, password } => {
                let account = self.accounts.get(user)?;
                let ok = match &account.check {
                    Check::Plain(d) => {
                        bool::from(d.ct_eq(&digest(&[password.expose().as_bytes()])))
                    }
                    Check::Hash(hash) => self.verify_hash(user, hash, password).await,
                };
                ok.then(|| Principal::new(user.clone(), account.role))
            }
        }
    }

    async fn verify_hash(&self, user: &str, hash: &str, password: &Secret) -> bool {
        let key = digest(&[&self.salt, user.as_bytes(), password.expose().as_bytes()]);
        if let Some(known) = self.verified.lock().get(user) {
            if bool::from(known.ct_eq(&key)) {
                return true;
            }
        }
        let hash = hash.to_string();
        let password = password.clone();
        let ok = tokio::task::spawn_blocking(move || verify_password(&hash, password.expose()))
            .await
            .unwrap_or(false);
        if ok {
            self.verified.lock().insert(user.to_string(), key);
        }
        ok
    }
}

/// Verifies `password` against an argon2 PHC string or a bcrypt hash.
pub fn verify_password(hash: &str, password: &str) -> bool {
    if hash.starts_with("$argon2") {
        use argon2::PasswordVerifier;
        match argon2::PasswordHash::new(hash) {
            Ok(parsed) => argon2::Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    } else if is_bcrypt(hash) {
        bcrypt::verify(password, hash).unwrap_or(false)
    } else {
        false
    }
}

/// Reads `Authorization: Basic ...` or `Authorization: Bearer ...`.
pub fn presented(header: Option<&str>) -> Option<Presented> {
    let header = header?.trim();
    let (scheme, value) = header.split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!value.is_empty()).then(|| Presented::Bearer(Secret::new(value)));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(Presented::Basic {
        user: user.to_string(),
        password: Secret::new(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(flags: &[&str]) -> AuthArgs {
        crate::test_args::parse(flags)
    }

    fn basic(user: &str, password: &str) -> Presented {
        Presented::Basic {
            user: user.into(),
            password: Secret::new(password),
        }
    }

    #[tokio::test]
    async fn flags_make_operators_viewers_and_tokens() {
        let auth = Auth::from_args(&config(&[
            "--basic-auth",
            "ann:s3cret",
            "--viewer",
            "vic:pw",
            "--api-token",
            "0123456789abcdef0123",
            "--api-token",
            "read:reader-0123456789abcdef",
            "--api-token",
            "control:ctl-0123456789abcdef",
        ]));
        assert!(auth.enabled());
        let ann = auth.authenticate(&basic("ann", "s3cret")).await.unwrap();
        assert_eq!(ann.role, Role::Operator);
        assert_eq!(
            auth.authenticate(&basic("vic", "pw")).await.unwrap().role,
            Role::Viewer
        );
        assert!(auth.authenticate(&basic("ann", "wrong")).await.is_none());
        assert!(auth
            .authenticate(&basic("nobody", "s3cret"))
            .await
            .is_none());
        let t = Presented::Bearer(Secret::new("0123456789abcdef0123"));
        let bare = auth.authenticate(&t).await.unwrap();
        assert_eq!(bare.name, token_id("0123456789abcdef0123"));
        assert_eq!(bare.role, Role::Operator);
        let read = Presented::Bearer(Secret::new("reader-0123456789abcdef"));
        let read = auth.authenticate(&read).await.unwrap();
        assert_eq!(read.role, Role::Viewer);
        assert!(read.name.starts_with("token:") && read.name.len() == 14);
        let ctl = Presented::Bearer(Secret::new("ctl-0123456789abcdef"));
        assert_eq!(auth.authenticate(&ctl).await.unwrap().role, Role::Operator);
        // The prefix is not part of the token.
        let prefixed = Presented::Bearer(Secret::new("read:reader-0123456789abcdef"));
        assert!(auth.authenticate(&prefixed).await.is_none());
        assert!(parse_token("read:short").is_err());
        assert!(auth
            .authenticate(&Presented::Bearer(Secret::new("nope")))
            .await
            .is_none());
        assert!(!Auth::from_args(&config(&[])).enabled());
    }

    #[tokio::test]
    async fn users_file_takes_argon2_and_bcrypt() {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        // Small parameters keep the debug-build test fast; verification
        // reads them from the hash.
        let params = argon2::Params::new(1024, 1, 1, None).unwrap();
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(b"apw", &salt)
            .unwrap()
            .to_string();
        let b = bcrypt::hash("bpw", 4).unwrap();
        let tok: [u8; 32] = Sha256::digest(b"alice-token-0123456789").into();
        let hex: String = tok.iter().map(|b| format!("{b:02x}")).collect();
        let text = format!("# users\nalice:{a}:operator:sha256={hex}\n\nbob:{b}\n");
        let users = parse_users(&text).unwrap();
        assert_eq!(users[0].role, Role::Operator);
        assert_eq!(users[1].role, Role::Viewer);
        assert!(!format!("{users:?}").contains("argon2"));
        assert!(verify_password(&a, "apw") && !verify_password(&a, "x"));
        assert!(verify_password(&b, "bpw") && !verify_password(&b, "x"));

        let dir = std::env::temp_dir().join(format!("celeriac-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("users");
        std::fs::write(&path, text).unwrap();
        let auth = Auth::from_args(&config(&["--users", path.to_str().unwrap()]));
        for _ in 0..2 {
            assert!(auth.authenticate(&basic("alice", "apw")).await.is_some());
        }
        assert!(auth.authenticate(&basic("alice", "bad")).await.is_none());
        assert_eq!(
            auth.authenticate(&basic("bob", "bpw")).await.unwrap().role,
            Role::Viewer
        );
        let t = Presented::Bearer(Secret::new("alice-token-0123456789"));
        let by_token = auth.authenticate(&t).await.unwrap();
        assert_eq!(by_token.role, Role::Operator);
        assert_eq!(
            by_token.name,
            format!("alice ({})", token_id("alice-token-0123456789"))
        );
        let wrong = Presented::Bearer(Secret::new("alice-token-0123456780"));
        assert!(auth.authenticate(&wrong).await.is_none());
        std::fs::remove_dir_all(&dir).unwrap();

        assert!(parse_users("carol:plaintext\n")
            .unwrap_err()
            .contains("line 1"));
        assert!(parse_users(&format!("x:{b}:boss\n"))
            .unwrap_err()
            .contains("role"));
        assert!(parse_users(&format!("x:{b}:viewer:plain-token\n"))
            .unwrap_err()
            .contains("sha256="));
        assert!(parse_users(&format!("x:{b}:viewer:sha256=abc\n"))
            .unwrap_err()
            .contains("line 1"));
    }

    #[test]
    fn secrets_never_print() {
        let c = config(&[
            "--basic-auth",
            "ann:hunter22",
            "--api-token",
            "tok-abcdefghijklmnop",
        ]);
        let text = format!("{c:?}");
        assert!(
            !text.contains("hunter22") && !text.contains("abcdefghijklmnop"),
            "{text}"
        );
    }

    #[test]
    fn authorization_headers_parse() {
        // "ann:pa:ss" — the password may contain colons.
        assert_eq!(
            presented(Some("Basic YW5uOnBhOnNz")),
            Some(basic("ann", "pa:ss"))
        );
        assert_eq!(
            presented(Some("bearer abc")),
            Some(Presented::Bearer(Secret::new("abc")))
        );
        assert_eq!(presented(Some("Basic !!!")), None);
        assert_eq!(presented(Some("Digest x")), None);
        assert_eq!(presented(None), None);
    }
}
