//! Sign-in with OpenID Connect: the authorization-code flow with PKCE
//! (S256) and a nonce, against a provider found by discovery, and the ID
//! token validated by the `openidconnect` crate (signature against the
//! provider's JWKS, issuer, audience, expiry, nonce). What comes out is an
//! [`Identity`]; [`Access`] turns it into a role, and `http/oidc.rs` into
//! a browser session (`auth::session`).
//!
//! A sign-in in progress is kept here, keyed by its `state`: the nonce, the
//! PKCE verifier and where to return. Entries live ten minutes, and at most
//! [`MAX_PENDING`] are kept (the oldest go first), so unfinished sign-ins
//! cannot fill memory. The provider's metadata and keys are fetched on
//! first use and again after [`REDISCOVER_AFTER`], so a key rotation is
//! picked up.

mod access;
mod args;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreClient, CoreGenderClaim, CoreIdTokenVerifier, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, IdToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};

pub use access::{Access, Who};
pub use args::{OidcArgs, DEFAULT_GROUPS_CLAIM, DEFAULT_SCOPES};

use crate::auth::{Role, Secret};

/// How long a sign-in may take between `/login` and the callback.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
pub const MAX_PENDING: usize = 4096;
pub const REDISCOVER_AFTER: Duration = Duration::from_secs(3600);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The checked settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub issuer: IssuerUrl,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub redirect: RedirectUrl,
    pub scopes: Vec<String>,
    pub groups_claim: String,
    pub access: Access,
}

impl OidcArgs {
    /// None without `--oidc-issuer`; an error naming the flag when a
    /// setting is missing or unreadable.
    pub fn settings(&self) -> Result<Option<Settings>, String> {
        let Some(issuer) = &self.oidc_issuer else {
            return Ok(None);
        };
        let issuer = IssuerUrl::new(issuer.trim_end_matches('/').to_string())
            .map_err(|e| format!("--oidc-issuer: not a URL: {e}"))?;
        let client_id = self
            .oidc_client_id
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or("--oidc-client-id is required with --oidc-issuer")?;
        let redirect = self.oidc_redirect_url.as_deref().ok_or(
            "--oidc-redirect-url is required with --oidc-issuer (celeriac's public address \
             and the callback path registered with the provider, e.g. \
             https://celeriac.example.com/login/callback)",
        )?;
        let redirect = RedirectUrl::new(redirect.to_string())
            .map_err(|e| format!("--oidc-redirect-url: not a URL: {e}"))?;
        if redirect.url().path() == "/" {
            return Err(
                "--oidc-redirect-url needs a path of its own (e.g. /login/callback)".into(),
            );
        }
        let client_secret = match (&self.oidc_client_secret, &self.oidc_client_secret_file) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    format!(
                        "--oidc-client-secret-file: cannot read {}: {e}",
                        path.display()
                    )
                })?;
                Some(Secret::new(text.trim()))
            }
            (None, None) => None,
        };
        let mut scopes: Vec<String> = self
            .oidc_scopes
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if !scopes.iter().any(|s| s == "openid") {
            scopes.insert(0, "openid".into());
        }
        let access = Access::new(&self.oidc_operators, &self.oidc_viewers);
        if access.is_empty() {
            return Err(
                "--oidc-issuer needs --oidc-operators or --oidc-viewers: otherwise nobody \
                 who signs in is allowed"
                    .into(),
            );
        }
        Ok(Some(Settings {
            issuer,
            client_id,
            client_secret,
            redirect,
            scopes,
            groups_claim: self.oidc_groups_claim.clone(),
            access,
        }))
    }
}

/// Claims beyond the standard ones (the groups claim is read from here).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}
impl AdditionalClaims for OtherClaims {}

/// An ID token with the claims celeriac reads.
pub type GroupsIdToken = IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

type DiscoveredClient = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Who signed in, from a validated ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    /// `email_verified`, when the provider says.
    pub email_verified: Option<bool>,
    pub name: Option<String>,
    pub groups: Vec<String>,
}

impl Identity {
    /// The email access lists may match: not one the provider marks
    /// unverified.
    pub fn trusted_email(&self) -> Option<&str> {
        match self.email_verified {
            Some(false) => None,
            _ => self.email.as_deref(),
        }
    }

    /// What to call the user.
    pub fn display_name(&self) -> String {
        self.email
            .clone()
            .or_else(|| self.name.clone())
            .unwrap_or_else(|| self.subject.clone())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot reach the OpenID provider ({issuer}): {detail}")]
    Discovery { issuer: String, detail: String },
    #[error("unknown or expired sign-in attempt (start again at /login)")]
    UnknownState,
    #[error("the provider refused the sign-in: {0}")]
    Provider(String),
    #[error("exchanging the authorization code failed: {0}")]
    Exchange(String),
    #[error("the provider's answer holds no ID token")]
    NoIdToken,
    #[error("the ID token is not valid: {0}")]
    InvalidIdToken(String),
}

/// A sign-in in progress.
struct Pending {
    nonce: Nonce,
    verifier: String,
    return_to: String,
    created: Instant,
}

/// Where the browser goes to sign in, and the `state` the callback will
/// carry.
pub struct Start {
    pub url: String,
    pub state: String,
}

/// The provider, its client and the sign-ins in progress.
pub struct Oidc {
    pub settings: Settings,
    http: reqwest::Client,
    provider: tokio::sync::Mutex<Option<(Instant, Arc<DiscoveredClient>)>>,
    pending: parking_lot::Mutex<HashMap<String, Pending>>,
}

impl Oidc {
    pub fn new(settings: Settings) -> Oidc {
        // No redirects: the provider's endpoints answer directly, and
        // following redirects from them would be an SSRF vector.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HTTP_TIMEOUT)
            .build()
            .unwrap_or_default();
        Oidc {
            settings,
            http,
            provider: tokio::sync::Mutex::new(None),
            pending: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// The path the provider sends the browser back to.
    pub fn callback_path(&self) -> &str {
        self.settings.redirect.url().path()
    }

    /// Whether celeriac is reached over https (then cookies are `Secure`).
    pub fn https(&self) -> bool {
        self.settings.redirect.url().scheme() == "https"
    }

    pub fn role(&self, who: &Identity) -> Option<Role> {
        self.settings.access.role(&Who {
            email: who.trusted_email(),
            groups: &who.groups,
        })
    }

    /// The discovered client, fetched on first use and refreshed hourly.
    async fn client(&self) -> Result<Arc<DiscoveredClient>, OidcError> {
        let mut cached = self.provider.lock().await;
        if let Some((at, client)) = cached.as_ref() {
            if at.elapsed() < REDISCOVER_AFTER {
                return Ok(client.clone());
            }
        }
        let s = &self.settings;
        let metadata = CoreProviderMetadata::discover_async(s.issuer.clone(), &self.http)
            .await
            .map_err(|e| OidcError::Discovery {
                issuer: s.issuer.to_string(),
                detail: error_chain(&e),
            })?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(s.client_id.clone()),
            s.client_secret
                .as_ref()
                .map(|c| ClientSecret::new(c.expose().to_string())),
        )
        .set_redirect_uri(s.redirect.clone());
        let client = Arc::new(client);
        *cached = Some((Instant::now(), client.clone()));
        Ok(client)
    }

    /// Fetches the provider's metadata now, so a misconfiguration shows in
    /// the start-up log rather than at the first sign-in.
    pub async fn warm_up(&self) -> Result<(), OidcError> {
        self.client().await.map(|_| ())
    }

    /// Starts a sign-in: the provider's authorization URL (code flow, PKCE
    /// S256, nonce, a random state).
    pub async fn begin(&self, return_to: String) -> Result<Start, OidcError> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.url();
        let mut pending = self.pending.lock();
        pending.retain(|_, p| p.created.elapsed() < PENDING_TTL);
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.created)
                .map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
        }
        pending.insert(
            state.secret().clone(),
            Pending {
                nonce,
                verifier: verifier.secret().clone(),
                return_to,
                created: Instant::now(),
            },
        );
        Ok(Start {
            url: url.to_string(),
            state: state.secret().clone(),
        })
    }

    /// Finishes a sign-in: exchanges the code (with the PKCE verifier) and
    /// validates the ID token. Returns who signed in and where to go.
    pub async fn finish(&self, state: &str, code: &str) -> Result<(Identity, String), OidcError> {
        let pending = self
            .pending
            .lock()
            .remove(state)
            .filter(|p| p.created.elapsed() < PENDING_TTL)
            .ok_or(OidcError::UnknownState)?;
        let client = self.client().await?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Exchange(error_chain(&e)))?;
        let raw = response.id_token().ok_or(OidcError::NoIdToken)?.to_string();
        let identity = validate(
            &raw,
            &client.id_token_verifier(),
            &pending.nonce,
            &self.settings.groups_claim,
        )?;
        Ok((identity, pending.return_to))
    }
}

/// Validates a compact ID token (signature with the verifier's keys,
/// issuer, audience, expiry, nonce) and reads the identity from it.
pub fn validate(
    raw: &str,
    verifier: &CoreIdTokenVerifier<'_>,
    nonce: &Nonce,
    groups_claim: &str,
) -> Result<Identity, OidcError> {
    let token = GroupsIdToken::from_str(raw)
        .map_err(|e| OidcError::InvalidIdToken(format!("unreadable: {e}")))?;
    let claims = token
        .claims(verifier, nonce)
        .map_err(|e| OidcError::InvalidIdToken(e.to_string()))?;
    let groups = match claims.additional_claims().rest.get(groups_claim) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    Ok(Identity {
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        email_verified: claims.email_verified(),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string())
            .or_else(|| claims.preferred_username().map(|u| u.to_string())),
        groups,
    })
}

/// An error and its sources on one line (reqwest hides the cause).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(flags: &[&str]) -> OidcArgs {
        crate::test_args::parse(flags)
    }

    #[test]
    fn settings_name_the_missing_flag() {
        assert!(args(&[]).settings().unwrap().is_none());
        let base = ["--oidc-issuer", "https://idp.example.com/"];
        let e = args(&base).settings().unwrap_err();
        assert!(e.contains("--oidc-client-id"), "{e}");
        let e = args(&[&base[..], &["--oidc-client-id", "c"]].concat())
            .settings()
            .unwrap_err();
        assert!(e.contains("--oidc-redirect-url"), "{e}");
        let with_redirect = [
            &base[..],
            &["--oidc-client-id", "c"],
            &[
                "--oidc-redirect-url",
                "https://c.example.com/flower/login/callback",
            ],
        ]
        .concat();
        let e = args(&with_redirect).settings().unwrap_err();
        assert!(e.contains("--oidc-operators"), "{e}");
        let ok = [
            &with_redirect[..],
            &[
                "--oidc-viewers",
                "*@example.com",
                "--oidc-scopes",
                "email,groups",
            ],
            &["--oidc-client-secret", "hunter2-client"],
        ]
        .concat();
        let s = args(&ok).settings().unwrap().unwrap();
        assert_eq!(s.scopes, ["openid", "email", "groups"]);
        assert_eq!(s.issuer.as_str(), "https://idp.example.com");
        assert!(!format!("{s:?}").contains("hunter2-client"));
        let oidc = Oidc::new(s);
        assert_eq!(oidc.callback_path(), "/flower/login/callback");
        assert!(oidc.https());
        let e = args(
            &[
                &base[..],
                &["--oidc-client-id", "c", "--oidc-redirect-url", "x"],
            ]
            .concat(),
        )
        .settings()
        .unwrap_err();
        assert!(e.contains("--oidc-redirect-url: not a URL"), "{e}");
    }

    #[test]
    fn the_secret_comes_from_a_file() {
        let dir = std::env::temp_dir().join(format!("celeriac-oidc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, "from-file-secret\n").unwrap();
        let s = args(&[
            "--oidc-issuer",
            "https://idp.example.com",
            "--oidc-client-id",
            "c",
            "--oidc-redirect-url",
            "http://127.0.0.1:5555/cb",
            "--oidc-operators",
            "ops",
            "--oidc-client-secret-file",
            path.to_str().unwrap(),
        ])
        .settings()
        .unwrap()
        .unwrap();
        assert_eq!(s.client_secret.unwrap().expose(), "from-file-secret");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unverified_emails_do_not_count() {
        let id = Identity {
            subject: "s".into(),
            email: Some("x@example.com".into()),
            email_verified: Some(false),
            name: None,
            groups: vec![],
        };
        assert_eq!(id.trusted_email(), None);
        assert_eq!(id.display_name(), "x@example.com");
    }
}
