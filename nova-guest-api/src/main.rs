//! `nova-guest-api`: see [`nova_guest_daemon::process::main`].

fn main() -> std::process::ExitCode {
    let load = nova_guest_api::config::load;
    nova_guest_daemon::process::main(
        "nova-guest-api",
        nova_guest_api::ABOUT,
        load,
        nova_guest_api::run,
    )
}
