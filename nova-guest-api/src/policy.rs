//! Per-action policy: which Keystone roles may do what (`[policy]` over the defaults).
//!
//! Any listed role grants, and nothing else does: an admin passes a rule only through a role
//! the rule lists (Keystone's default roles imply one another, admin ⇒ member ⇒ reader, and
//! tokens carry the implied ones), so an operator who empties `exec =` turns exec off for
//! everyone. Role names are case-sensitive, as in Keystone. Which projects a token may act on
//! is [`may_act_on`]'s question.

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
    /// `POST /v1/{project}/networking/actions`: apply-networking on many instances.
    FleetApplyNetworking,
}

impl Target {
    /// Every target, in the order messages list them.
    pub fn all() -> impl Iterator<Item = Self> {
        Action::ALL.into_iter().take(4).map(Self::Action).chain([
            Self::Guest,
            Self::Action(Action::Exec),
            Self::FleetApplyNetworking,
        ])
    }

    /// The wire and config name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Action(a) => a.name(),
            Self::Guest => "guest",
            Self::FleetApplyNetworking => "fleet-apply-networking",
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
            Self::Action(Action::ApplyNetworking | Action::SetPassword | Action::InjectFile)
            | Self::FleetApplyNetworking => "member",
            Self::Action(Action::Ping) | Self::Guest => "reader",
            Self::Action(Action::Exec) => "admin",
        }
    }
}

/// The admin role (cross-project access for cloud admins, see [`may_act_on`]).
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
            self.roles(action).iter().any(|g| g == r)
        })
    }
}

/// What a token says about its holder, for the project check.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The token's project, when project-scoped.
    pub project_id: Option<&'a str>,
    /// System-scoped (`"system": {"all": true}`).
    pub system: bool,
    /// Holds the admin role.
    pub admin: bool,
}

/// Whether a token may act on `project`'s instances: its own project; any project for a
/// cloud admin, which is, as in Nova's and Keystone's policies since scoped RBAC, a
/// system-scoped token with the admin role, or an admin of one of the projects an operator
/// lists in `[api] admin_project_ids` (the classic "admin project"). A project-scoped admin
/// of any other project is an admin of that project only.
pub fn may_act_on(scope: Scope<'_>, project: &str, admin_project_ids: &[String]) -> bool {
    if scope.project_id == Some(project) {
        return true;
    }
    scope.admin
        && (scope.system
            || scope
                .project_id
                .is_some_and(|p| admin_project_ids.iter().any(|a| a == p)))
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
                "exec",
                "fleet-apply-networking"
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
        assert!(!p.allows(PING, &["admin"]), "admins pass listed roles only");
        p.set(EXEC, vec![]);
        assert!(!p.allows(EXEC, &["admin", "member", "reader"]));
    }

    #[test]
    fn cross_project_only_for_cloud_admins() {
        let admins = vec!["ops".to_owned()];
        let scope = |project_id, system, admin| Scope {
            project_id,
            system,
            admin,
        };
        assert!(may_act_on(scope(Some("p"), false, false), "p", &admins));
        assert!(!may_act_on(scope(Some("q"), false, false), "p", &admins));
        assert!(
            !may_act_on(scope(Some("q"), false, true), "p", &admins),
            "a project-scoped admin of another project"
        );
        assert!(may_act_on(scope(None, true, true), "p", &admins));
        assert!(!may_act_on(scope(None, true, false), "p", &admins));
        assert!(may_act_on(scope(Some("ops"), false, true), "p", &admins));
        assert!(!may_act_on(scope(Some("ops"), false, false), "p", &admins));
    }
}
