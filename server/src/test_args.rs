//! Tests build a module's settings from flags, as users write them, without
//! the rest of the configuration.

use clap::{Args, Command, FromArgMatches};

/// Parses `flags` as the command line of one module's settings.
pub fn parse<T: Args + FromArgMatches>(flags: &[&str]) -> T {
    let command = T::augment_args(Command::new("celeriac"));
    let matches = command
        .try_get_matches_from(std::iter::once("celeriac").chain(flags.iter().copied()))
        .unwrap_or_else(|e| panic!("{flags:?}: {e}"));
    T::from_arg_matches(&matches).unwrap_or_else(|e| panic!("{flags:?}: {e}"))
}
