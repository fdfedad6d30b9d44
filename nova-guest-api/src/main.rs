//! `nova-guest-api`: see [`nova_guest_daemon::process::main`]; `--print-agent-token HOST`
//! prints the token the agent on HOST must hold.

use std::process::ExitCode;

fn main() -> ExitCode {
    nova_guest_daemon::process::main_with(
        "nova-guest-api",
        nova_guest_api::ABOUT,
        nova_guest_api::tools::arguments,
        nova_guest_api::tools::run,
        nova_guest_api::config::load,
        nova_guest_api::run,
    )
}
