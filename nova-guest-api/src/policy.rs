//! Per-action policy: which Keystone roles may do what (`[policy]` over the defaults).
//!
//! Any listed role grants; `admin` passes everything. Role names are case-sensitive, as in
//! Keystone, and implied roles are already expanded in the token (member ⇒ reader).

use std::collections::BTreeMap;

use nova_guest_contract::Action;

/// What a request asks for (the policy targets): one of the agent's actions, or reading the
/// guest summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// `POST .../actions` with this action.
    Action(Action),
    /// `GET .../guest`.
    Guest,
}

impl Target {
    /// Every target, in the order messages list them.
    pub fn all() -> impl Iterator<Item = Self> {
        Action::ALL
            .into_iter()
            .take(4)
            .map(Self::Action)
            .chain([Self::Guest, Self::Action(Action::Exec)])
    }

    /// The wire and config name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Action(a) => a.name(),
            Self::Guest => "guest",
        }
    }

    /// The target with this name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::all().find(|t| t.name() == name)
    }

    /// Every name, for messages.
    pub fn names() -> Vec<&'static str> {
        Self::all().map(Self::name).collect()
    }

    fn default_role(self) -> &'static str {
        match self {
            Self::Action(Action::ApplyNetworking | Action::SetPassword | Action::InjectFile) => {
                "member"
            }
            Self::Action(Action::Ping) | Self::Guest => "reader",
            Self::Action(Action::Exec) => "admin",
        }
    }
}

/// The role that passes every rule.
pub const ADMIN_ROLE: &str = "admin";

/// The roles granting each action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: BTreeMap<Target, Vec<String>>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            rules: Target::all()
                .map(|a| (a, vec![a.default_role().to_owned()]))
                .collect(),
        }
    }
}

impl Policy {
    /// Replaces the roles of one action.
    pub fn set(&mut self, action: Target, roles: Vec<String>) {
        self.rules.insert(action, roles);
    }

    /// The roles granting `action`.
    pub fn roles(&self, action: Target) -> &[String] {
        self.rules.get(&action).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether someone holding `roles` may do `action`.
    pub fn allows<S: AsRef<str>>(&self, action: Target, roles: &[S]) -> bool {
        roles.iter().any(|r| {
            let r = r.as_ref();
            r == ADMIN_ROLE || self.roles(action).iter().any(|g| g == r)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PING: Target = Target::Action(Action::Ping);
    const EXEC: Target = Target::Action(Action::Exec);
    const SET_PASSWORD: Target = Target::Action(Action::SetPassword);

    #[test]
    fn names_keep_their_order() {
        assert_eq!(
            Target::names(),
            [
                "apply-networking",
                "set-password",
                "inject-file",
                "ping",
                "guest",
                "exec"
            ]
        );
        assert_eq!(Target::from_name("guest"), Some(Target::Guest));
    }

    #[test]
    fn defaults() {
        let p = Policy::default();
        assert!(p.allows(PING, &["reader"]));
        assert!(p.allows(Target::Guest, &["reader"]));
        assert!(!p.allows(SET_PASSWORD, &["reader"]));
        assert!(p.allows(SET_PASSWORD, &["member", "reader"]));
        assert!(!p.allows(EXEC, &["member", "reader"]));
        assert!(p.allows(EXEC, &["admin"]));
        assert!(!p.allows(PING, &[] as &[&str]));
        assert!(!p.allows(PING, &["Reader"]), "case-sensitive");
    }

    #[test]
    fn overrides_and_admin() {
        let mut p = Policy::default();
        p.set(EXEC, vec!["operator".into(), "member".into()]);
        p.set(PING, vec![]);
        assert!(p.allows(EXEC, &["member"]));
        assert!(!p.allows(PING, &["reader"]));
        assert!(p.allows(PING, &["admin"]));
    }
}
