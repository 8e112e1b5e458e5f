//! The OpenID Connect settings: which provider, which client, who may enter.

use std::path::PathBuf;

use crate::auth::Secret;

pub const DEFAULT_SCOPES: &str = "openid email profile";
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";

#[derive(Debug, Clone, clap::Args)]
pub struct OidcArgs {
    /// The OpenID provider's issuer URL (discovery at
    /// `ISSUER/.well-known/openid-configuration`); turns on sign-in at
    /// `/login`.
    #[arg(long, env = "CELERIAC_OIDC_ISSUER", value_name = "URL")]
    pub oidc_issuer: Option<String>,

    /// The client id registered with the provider.
    #[arg(long, env = "CELERIAC_OIDC_CLIENT_ID", value_name = "ID")]
    pub oidc_client_id: Option<String>,

    /// The client secret (prefer `--oidc-client-secret-file` or the
    /// environment: a flag shows in `ps`).
    #[arg(long, env = "CELERIAC_OIDC_CLIENT_SECRET", value_name = "SECRET",
          value_parser = |s: &str| Ok::<_, String>(Secret::new(s)), hide_env_values = true)]
    pub oidc_client_secret: Option<Secret>,

    /// A file holding the client secret (surrounding whitespace ignored).
    #[arg(
        long,
        env = "CELERIAC_OIDC_CLIENT_SECRET_FILE",
        value_name = "FILE",
        conflicts_with = "oidc_client_secret"
    )]
    pub oidc_client_secret_file: Option<PathBuf>,

    /// Where the provider sends the browser back, as registered with it:
    /// celeriac's public address and a path of your choice, e.g.
    /// `https://celeriac.example.com/login/callback`.
    #[arg(long, env = "CELERIAC_OIDC_REDIRECT_URL", value_name = "URL")]
    pub oidc_redirect_url: Option<String>,

    /// The scopes asked for (space or comma separated); `openid` is always
    /// included.
    #[arg(long, env = "CELERIAC_OIDC_SCOPES", default_value = DEFAULT_SCOPES, value_name = "SCOPES")]
    pub oidc_scopes: String,

    /// The ID-token claim that lists the user's groups.
    #[arg(long, env = "CELERIAC_OIDC_GROUPS_CLAIM", default_value = DEFAULT_GROUPS_CLAIM,
          value_name = "CLAIM")]
    pub oidc_groups_claim: String,

    /// Who signs in as an operator: emails, `*@domain` patterns or group
    /// names (comma separated, repeatable).
    #[arg(
        long,
        env = "CELERIAC_OIDC_OPERATORS",
        value_delimiter = ',',
        value_name = "WHO"
    )]
    pub oidc_operators: Vec<String>,

    /// Who signs in as a viewer (read only): emails, `*@domain` patterns or
    /// group names.
    #[arg(
        long,
        env = "CELERIAC_OIDC_VIEWERS",
        value_delimiter = ',',
        value_name = "WHO"
    )]
    pub oidc_viewers: Vec<String>,
}
