//! The body of `POST /v1/instances/{uuid}/actions`, parsed with the contract and made ready
//! for the guest (inject-file contents decoded and bounded before anything else happens).

use serde_json::Value;

pub use nova_guest_contract::Action;
use nova_guest_contract::ActionRequest;
use nova_guest_contract::request::{Exec, SetPassword};

use crate::error::ApiError;

/// A parsed action request.
pub enum Job {
    /// Apply network_data.json.
    ApplyNetworking {
        /// The network_data.json document.
        network_data: Value,
    },
    /// Set a user's password.
    SetPassword(SetPassword),
    /// Write a file.
    InjectFile {
        /// The guest path.
        path: String,
        /// The decoded contents.
        contents: Vec<u8>,
        /// Permission bits in octal, when asked for.
        mode: Option<String>,
    },
    /// Ping the agent.
    Ping,
    /// Run a program.
    Exec(Exec),
}

impl Job {
    /// Which action this is.
    pub fn action(&self) -> Action {
        match self {
            Self::ApplyNetworking { .. } => Action::ApplyNetworking,
            Self::SetPassword(_) => Action::SetPassword,
            Self::InjectFile { .. } => Action::InjectFile,
            Self::Ping => Action::Ping,
            Self::Exec(_) => Action::Exec,
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies carry passwords, file contents and exec arguments: only the action is shown.
        write!(f, "Job({})", self.action())
    }
}

/// Parses a request body; inject-file contents are decoded, at most `max_file_size` bytes.
///
/// # Errors
///
/// 400 with the contract's message for a malformed body, 413 for contents over the limit.
pub fn parse(body: &[u8], max_file_size: usize) -> Result<Job, ApiError> {
    Ok(match ActionRequest::from_slice(body)? {
        ActionRequest::ApplyNetworking(b) => Job::ApplyNetworking {
            network_data: b.network_data,
        },
        ActionRequest::SetPassword(b) => Job::SetPassword(b),
        ActionRequest::InjectFile(f) => Job::InjectFile {
            contents: f.decode(max_file_size)?,
            path: f.path,
            mode: f.mode,
        },
        ActionRequest::Ping => Job::Ping,
        ActionRequest::Exec(e) => Job::Exec(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_are_decoded_and_bounded_early() {
        let job = parse(
            br#"{"inject-file": {"path": "/x", "contents": "aGk="}}"#,
            10,
        )
        .unwrap();
        let Job::InjectFile { contents, .. } = job else {
            panic!()
        };
        assert_eq!(contents, b"hi");
        let e = parse(
            br#"{"inject-file": {"path": "/x", "contents": "aGVsbG8gd29ybGQ="}}"#,
            4,
        )
        .unwrap_err();
        assert_eq!(e.status().as_u16(), 413);
        let e = parse(br#"{"inject-file": {"path": "/x", "contents": "***"}}"#, 4).unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        let e = parse(br#"{"set-password": {"password": "hunter2", "x": 1}}"#, 4).unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        assert!(!e.to_string().contains("hunter2"));
        assert_eq!(
            format!("{:?}", parse(br#"{"ping": null}"#, 1).unwrap()),
            "Job(ping)"
        );
    }
}
