//! Connects to a guest agent socket, pings it and prints the agent's version.
//!
//! ```text
//! cargo run -p qga-examples --example ping -- /run/qemu-server/100.qga
//! ```

use std::process::ExitCode;
use std::time::Duration;

use qga_client::Client;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(socket) = std::env::args_os().nth(1) else {
        eprintln!("usage: ping SOCKET");
        return ExitCode::from(64);
    };
    let result = async {
        let client = Client::builder()
            .default_timeout(Duration::from_secs(3))
            .connect(&socket)
            .await?;
        client.ping().await?;
        client.info().await
    }
    .await;
    match result {
        Ok(info) => {
            println!("qemu-ga {} answers", info.version);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ping: {e}");
            ExitCode::FAILURE
        }
    }
}
