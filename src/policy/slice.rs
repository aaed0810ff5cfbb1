//! Policy slicing: Cedar evaluates every policy it is given, so the PDP hands it only the
//! policies that could apply to a request. A slice is chosen by action and, when policies name
//! one capability in their scope (`resource == Tool::"case__read_case"`), by that capability.
//! Decision cost then depends on the policies relevant to one request, not on the total.
//!
//! Slicing must never drop a policy that could match: a scope it cannot analyse (an action
//! group, `resource in ...`) puts the policy in every slice of the actions it may cover.

use std::collections::HashMap;

use cedar_policy::{ActionConstraint, EntityUid, Policy, PolicySet, ResourceConstraint};

use super::contract::Action;
use super::entities::uid;

/// One slice: its policies, and its permits alone (to ask "would anything permit this?").
pub struct Slice {
    pub all: PolicySet,
    pub permits: PolicySet,
}

/// The policy set cut into per-request slices.
pub struct PolicySlices {
    /// Per action: the policies whose resource scope is not one specific capability.
    generic: HashMap<Action, Slice>,
    /// Per action and capability: the generic slice plus the policies naming that capability.
    specific: HashMap<(Action, EntityUid), Slice>,
}

fn actions_of(policy: &Policy, action_uids: &HashMap<Action, EntityUid>) -> Vec<Action> {
    let ours = |candidate: &EntityUid| {
        action_uids
            .iter()
            .find(|(_, known)| *known == candidate)
            .map(|(action, _)| *action)
    };
    match policy.action_constraint() {
        ActionConstraint::Any => Action::ALL.to_vec(),
        ActionConstraint::Eq(target) => match ours(&target) {
            Some(action) => vec![action],
            // An action group: cover every action, Cedar decides membership.
            None => Action::ALL.to_vec(),
        },
        ActionConstraint::In(targets) => {
            let mut actions = Vec::new();
            for target in &targets {
                match ours(target) {
                    Some(action) => actions.push(action),
                    None => return Action::ALL.to_vec(),
                }
            }
            actions
        }
    }
}

impl PolicySlices {
    pub fn build(policies: &PolicySet) -> Result<Self, String> {
        let mut action_uids = HashMap::new();
        for action in Action::ALL {
            action_uids.insert(action, uid("Action", action.as_str())?);
        }
        let mut generic: HashMap<Action, Vec<Policy>> = HashMap::new();
        let mut by_capability: HashMap<(Action, EntityUid), Vec<Policy>> = HashMap::new();
        for policy in policies.policies() {
            let actions = actions_of(policy, &action_uids);
            let specific_to = match policy.resource_constraint() {
                ResourceConstraint::Eq(target) => Some(target),
                ResourceConstraint::Any
                | ResourceConstraint::In(_)
                | ResourceConstraint::Is(_)
                | ResourceConstraint::IsIn(_, _) => None,
            };
            for action in actions {
                match &specific_to {
                    Some(target) => by_capability
                        .entry((action, target.clone()))
                        .or_default()
                        .push(policy.clone()),
                    None => generic.entry(action).or_default().push(policy.clone()),
                }
            }
        }
        let to_set = |policies: Vec<Policy>| -> Result<Slice, String> {
            let permits: Vec<Policy> = policies
                .iter()
                .filter(|p| p.effect() == cedar_policy::Effect::Permit)
                .cloned()
                .collect();
            let set = |policies: Vec<Policy>| {
                PolicySet::from_policies(policies)
                    .map_err(|e| format!("slicing the policy set: {e}"))
            };
            Ok(Slice {
                all: set(policies)?,
                permits: set(permits)?,
            })
        };
        let mut specific = HashMap::new();
        for ((action, target), own) in by_capability {
            let mut combined = generic.get(&action).cloned().unwrap_or_default();
            combined.extend(own);
            specific.insert((action, target), to_set(combined)?);
        }
        let mut generic_sets = HashMap::new();
        for action in Action::ALL {
            generic_sets.insert(action, to_set(generic.remove(&action).unwrap_or_default())?);
        }
        Ok(Self {
            generic: generic_sets,
            specific,
        })
    }

    /// The policies that could apply to `action` on `resource`.
    pub fn slice(&self, action: Action, resource: &EntityUid) -> Option<&Slice> {
        self.specific
            .get(&(action, resource.clone()))
            .or_else(|| self.generic.get(&action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn slices_keep_generic_policies_and_only_the_capabilitys_own() {
        let set = PolicySet::from_str(
            r#"
            permit(principal, action == Action::"call_tool", resource);
            permit(principal, action == Action::"call_tool", resource == Tool::"a");
            permit(principal, action == Action::"call_tool", resource == Tool::"b");
            forbid(principal, action, resource);
            permit(principal, action in [Action::"discover_tool", Action::"call_tool"], resource == Tool::"a");
            "#,
        )
        .expect("parse");
        let slices = PolicySlices::build(&set).expect("slices");
        let tool_a = uid("Tool", "a").expect("uid");
        let tool_c = uid("Tool", "c").expect("uid");
        let count = |a, r: &EntityUid| slices.slice(a, r).map(|s| s.all.policies().count());
        assert_eq!(count(Action::CallTool, &tool_a), Some(4));
        assert_eq!(count(Action::CallTool, &tool_c), Some(2));
        assert_eq!(count(Action::DiscoverTool, &tool_a), Some(2));
        assert_eq!(count(Action::ReadResource, &tool_a), Some(1));
    }
}
