//! Secrets read from the configuration (passwords, shared tokens): never printed.

use std::fmt;

use sha2::{Digest, Sha256};

/// A secret string. `Debug` never shows it; comparison with [`Secret::matches`] takes the
/// same time whatever the input.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for sending it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this secret, compared in constant time. Both sides are hashed
    /// first, so the time does not depend on the length of either.
    pub fn matches(&self, presented: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let ours: [u8; 32] = Sha256::digest(self.0.as_bytes()).into();
        let theirs: [u8; 32] = Sha256::digest(presented).into();
        ours.ct_eq(&theirs).into()
    }

    /// True for the empty secret (a placeholder after an error).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The token nova-guest-agent on compute host `host` accepts, derived from nova-guest-api's
/// master secret: lower-case hex of HMAC-SHA256(master, `"nova-guest-agent:" + host`).
///
/// Every host gets its own token without a token database: the API holds one master secret
/// and derives the token of the host it calls; an operator installs each host's token with
/// `nova-guest-api --print-agent-token HOST`. A compromised compute host reveals only its own
/// token, which no other host accepts.
pub fn agent_token(master: &Secret, host: &str) -> Secret {
    use hmac::{Hmac, Mac};
    // HMAC takes a key of any length; new_from_slice cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(master.expose().as_bytes()) else {
        return Secret::new("");
    };
    mac.update(b"nova-guest-agent:");
    mac.update(host.as_bytes());
    Secret::new(hex::encode(mac.finalize().into_bytes()))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_tokens_differ_per_host_and_master() {
        let master = Secret::new("m".repeat(32));
        let a = agent_token(&master, "compute-1");
        assert_eq!(a.expose().len(), 64);
        assert_eq!(a, agent_token(&master, "compute-1"), "deterministic");
        assert_ne!(a, agent_token(&master, "compute-2"));
        assert_ne!(a, agent_token(&Secret::new("n".repeat(32)), "compute-1"));
        // Checked against an independent HMAC-SHA256 (openssl):
        // printf 'nova-guest-agent:h' | openssl dgst -sha256 -hmac key
        assert_eq!(
            agent_token(&Secret::new("key"), "h").expose(),
            "eb872c00b20ddc4e634414f44b7f56aebffc1d41895bcdca4393a999b93edcc0"
        );
    }

    #[test]
    fn matches_exactly_and_never_prints() {
        let s = Secret::new("s3cret");
        assert!(s.matches(b"s3cret"));
        assert!(!s.matches(b"s3cret "));
        assert!(!s.matches(b""));
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(s.expose(), "s3cret");
    }
}
