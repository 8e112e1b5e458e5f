//! Tests build a module's settings from flags, as users write them, without
//! the rest of the configuration.

use clap::{Args, Command, FromArgMatches};

/// Parses `flags` as the command line of one module's settings.
pub fn parse<T: Args + FromArgMatches>(flags: &[&str]) -> T {
    try_parse(flags).unwrap_or_else(|e| panic!("{flags:?}: {e}"))
}

/// As [`parse`], returning clap's error (which names the flag).
pub fn try_parse<T: Args + FromArgMatches>(flags: &[&str]) -> Result<T, clap::Error> {
    let command = T::augment_args(Command::new("celeriac"));
    let matches =
        command.try_get_matches_from(std::iter::once("celeriac").chain(flags.iter().copied()))?;
    T::from_arg_matches(&matches)
}
