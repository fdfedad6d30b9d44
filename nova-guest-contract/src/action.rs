//! The action vocabulary.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// An action name, as in request bodies and in `[agent] enabled_actions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// `apply-networking`: apply network_data.json inside the guest.
    ApplyNetworking,
    /// `set-password`: set a guest user's password.
    SetPassword,
    /// `inject-file`: write a file into the guest.
    InjectFile,
    /// `ping`: is the guest agent answering?
    Ping,
    /// `exec`: run a program in the guest (disabled by default).
    Exec,
}

impl Action {
    /// Every action, in the order messages list them.
    pub const ALL: [Self; 5] = [
        Self::ApplyNetworking,
        Self::SetPassword,
        Self::InjectFile,
        Self::Ping,
        Self::Exec,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ApplyNetworking => "apply-networking",
            Self::SetPassword => "set-password",
            Self::InjectFile => "inject-file",
            Self::Ping => "ping",
            Self::Exec => "exec",
        }
    }

    /// The action with this wire name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Every wire name, comma-separated, for messages.
    pub fn names() -> String {
        Self::ALL.map(Self::name).join(", ")
    }

    /// Enabled on a host unless its configuration says otherwise: everything but `exec`.
    pub fn default_enabled() -> BTreeSet<Self> {
        Self::ALL.into_iter().filter(|a| *a != Self::Exec).collect()
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.name()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.name());
            assert_eq!(
                serde_json::from_value::<Action>(a.name().into()).unwrap(),
                a
            );
        }
        assert_eq!(Action::from_name("reboot"), None);
        assert!(!Action::default_enabled().contains(&Action::Exec));
        assert_eq!(Action::default_enabled().len(), 4);
    }
}
