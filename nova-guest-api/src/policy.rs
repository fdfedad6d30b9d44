//! Per-action policy: which Keystone roles may do what (`[policy]` over the defaults).
//!
//! Any listed role grants; `admin` passes everything. Role names are case-sensitive, as in
//! Keystone, and implied roles are already expanded in the token (member ⇒ reader).

use std::collections::BTreeMap;

/// What a request asks for (the policy targets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// `apply-networking`.
    ApplyNetworking,
    /// `set-password`.
    SetPassword,
    /// `inject-file`.
    InjectFile,
    /// `ping`.
    Ping,
    /// `GET .../guest`.
    Guest,
    /// `exec`.
    Exec,
}

const ALL: [Action; 6] = [
    Action::ApplyNetworking,
    Action::SetPassword,
    Action::InjectFile,
    Action::Ping,
    Action::Guest,
    Action::Exec,
];

impl Action {
    /// The wire and config name.
    pub fn name(self) -> &'static str {
        match self {
            Self::ApplyNetworking => "apply-networking",
            Self::SetPassword => "set-password",
            Self::InjectFile => "inject-file",
            Self::Ping => "ping",
            Self::Guest => "guest",
            Self::Exec => "exec",
        }
    }

    /// The action with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|a| a.name() == name)
    }

    /// Every name, for messages.
    pub fn names() -> Vec<&'static str> {
        ALL.iter().map(|a| a.name()).collect()
    }

    fn default_role(self) -> &'static str {
        match self {
            Self::ApplyNetworking | Self::SetPassword | Self::InjectFile => "member",
            Self::Ping | Self::Guest => "reader",
            Self::Exec => "admin",
        }
    }
}

/// The role that passes every rule.
pub const ADMIN_ROLE: &str = "admin";

/// The roles granting each action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: BTreeMap<Action, Vec<String>>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            rules: ALL
                .into_iter()
                .map(|a| (a, vec![a.default_role().to_owned()]))
                .collect(),
        }
    }
}

impl Policy {
    /// Replaces the roles of one action.
    pub fn set(&mut self, action: Action, roles: Vec<String>) {
        self.rules.insert(action, roles);
    }

    /// The roles granting `action`.
    pub fn roles(&self, action: Action) -> &[String] {
        self.rules.get(&action).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether someone holding `roles` may do `action`.
    pub fn allows<S: AsRef<str>>(&self, action: Action, roles: &[S]) -> bool {
        roles.iter().any(|r| {
            let r = r.as_ref();
            r == ADMIN_ROLE || self.roles(action).iter().any(|g| g == r)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let p = Policy::default();
        assert!(p.allows(Action::Ping, &["reader"]));
        assert!(p.allows(Action::Guest, &["reader"]));
        assert!(!p.allows(Action::SetPassword, &["reader"]));
        assert!(p.allows(Action::SetPassword, &["member", "reader"]));
        assert!(!p.allows(Action::Exec, &["member", "reader"]));
        assert!(p.allows(Action::Exec, &["admin"]));
        assert!(!p.allows(Action::Ping, &[] as &[&str]));
        assert!(!p.allows(Action::Ping, &["Reader"]), "case-sensitive");
    }

    #[test]
    fn overrides_and_admin() {
        let mut p = Policy::default();
        p.set(Action::Exec, vec!["operator".into(), "member".into()]);
        p.set(Action::Ping, vec![]);
        assert!(p.allows(Action::Exec, &["member"]));
        assert!(!p.allows(Action::Ping, &["reader"]));
        assert!(p.allows(Action::Ping, &["admin"]));
    }
}
