//! Log output: tracing to stderr, as text or JSON. `RUST_LOG` overrides the level.

use nova_guest_conf::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (debug level with `debug`, else info). Call once, before
/// anything logs; later calls do nothing.
pub fn init(format: LogFormat, debug: bool) {
    let default = if debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // amq-protocol-tcp (under lapin, nova-guest-api's notification consumer) prints the AMQP
    // URI, password included, at trace level: never below debug for it.
    let filter = match "amq_protocol_tcp=debug".parse() {
        Ok(cap) => filter.add_directive(cap),
        Err(_) => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}
