//! One-shot commands of the binary, run with the loaded configuration instead of the daemon.

use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};
use nova_guest_conf::agent_token;

use crate::config::Config;

/// Adds `--print-agent-token HOST` to the command line.
pub fn arguments(command: Command) -> Command {
    command.arg(
        Arg::new("print-agent-token")
            .long("print-agent-token")
            .value_name("HOST")
            .help(
                "Print the token nova-guest-agent on compute host HOST must hold in its \
                 [agent] auth_token_file (derived from [api] agent_auth_token_file), and exit",
            ),
    )
}

/// Runs the one-shot command asked for, if any.
pub fn run(matches: &ArgMatches, config: &Config) -> Option<ExitCode> {
    let host = matches.get_one::<String>("print-agent-token")?;
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        eprintln!("nova-guest-api: --print-agent-token needs a host name as Nova reports it");
        return Some(ExitCode::from(64));
    }
    println!("{}", agent_token(&config.agent_auth_token, host).expose());
    Some(ExitCode::SUCCESS)
}
