//! Who may use celeriac: the users, tokens and modes that build [`super::Auth`].

use clap::ArgAction;

use super::{parse_credential, parse_token, parse_users_file, ApiToken, Credential, UsersFile};

#[derive(Debug, Clone, clap::Args)]
pub struct AuthArgs {
    /// An operator `USER:PASSWORD` (repeatable; comma-separated in the
    /// environment).
    #[arg(long, env = "CELERIAC_BASIC_AUTH", value_delimiter = ',', value_name = "USER:PASSWORD",
          value_parser = parse_credential)]
    pub basic_auth: Vec<Credential>,

    /// A read-only `USER:PASSWORD` (repeatable).
    #[arg(long, env = "CELERIAC_VIEWER", value_delimiter = ',', value_name = "USER:PASSWORD",
          value_parser = parse_credential)]
    pub viewer: Vec<Credential>,

    /// A users file: lines `user:hash[:operator|viewer[:sha256=HEX,...]]`
    /// with argon2 or bcrypt hashes and the SHA-256 of the user's tokens.
    #[arg(long, env = "CELERIAC_USERS", value_name = "FILE", value_parser = parse_users_file)]
    pub users: Option<UsersFile>,

    /// A bearer token for scripts (repeatable): `read:TOKEN` reads only,
    /// `control:TOKEN` or a bare `TOKEN` also controls.
    #[arg(long, env = "CELERIAC_API_TOKEN", value_delimiter = ',', value_name = "[SCOPE:]TOKEN",
          value_parser = parse_token)]
    pub api_token: Vec<ApiToken>,

    /// Refuse every control action, for everyone.
    #[arg(long, env = "CELERIAC_READ_ONLY", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub read_only: bool,

    /// Serve `/metrics` without credentials when users are configured.
    #[arg(long, env = "CELERIAC_OPEN_METRICS", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub open_metrics: bool,
}
