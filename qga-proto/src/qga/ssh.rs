//! SSH authorized keys (5.2+).

use serde::{Deserialize, Serialize};

use crate::Empty;

/// `guest-ssh-get-authorized-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestSshGetAuthorizedKeys {
    /// Account name.
    pub username: String,
}
command!(
    GuestSshGetAuthorizedKeys,
    "guest-ssh-get-authorized-keys",
    GuestAuthorizedKeys
);

/// The reply to [`GuestSshGetAuthorizedKeys`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestAuthorizedKeys {
    /// One public key per entry.
    pub keys: Vec<String>,
}

/// `guest-ssh-add-authorized-keys`. Destructive on the machine running the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestSshAddAuthorizedKeys {
    /// Account name.
    pub username: String,
    /// Keys to add.
    pub keys: Vec<String>,
    /// Replace all existing keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset: Option<bool>,
}
command!(
    GuestSshAddAuthorizedKeys,
    "guest-ssh-add-authorized-keys",
    Empty
);

/// `guest-ssh-remove-authorized-keys` (absent keys are not an error). Destructive on the
/// machine running the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GuestSshRemoveAuthorizedKeys {
    /// Account name.
    pub username: String,
    /// Keys to remove.
    pub keys: Vec<String>,
}
command!(
    GuestSshRemoveAuthorizedKeys,
    "guest-ssh-remove-authorized-keys",
    Empty
);
