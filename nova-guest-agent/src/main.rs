//! `nova-guest-agent`: see [`nova_guest_daemon::process::main`].

fn main() -> std::process::ExitCode {
    nova_guest_daemon::process::main(
        "nova-guest-agent",
        nova_guest_agent::ABOUT,
        nova_guest_agent::config::load,
        nova_guest_agent::run,
    )
}
