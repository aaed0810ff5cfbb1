//! Policy slicing: Cedar evaluates every policy it is given, so the PDP hands it only the
//! policies that could apply to a request. A slice is chosen by action and, when policies name
//! one capability in their scope (`resource == Tool::"case__read_case"`), by that capability.
//! Decision cost then depends on the policies relevant to one request, not on the total.
//!
//! Within a slice, a policy can be known not to match before Cedar runs, from what the request
//! plainly states (its principal, the context keys present, the capability's contract
//! attributes): the policy's guards (`guards.rs`) read false, and it would evaluate to false
//! without error. Leaving it out changes neither Cedar's decision nor the determining policies
//! nor the errors, so each slice keeps, per combination of guard values that requests show, the
//! policies that remain ([`Slice::for_request`]).
//!
//! Slicing must never drop a policy that could match: a scope or condition it cannot analyse
//! (an action group, `resource in ...`, a condition of another shape) keeps the policy in every
//! slice and every variant it may apply to.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cedar_policy::{ActionConstraint, EntityUid, Policy, PolicySet, ResourceConstraint};

use super::contract::Action;
use super::entities::uid;
use super::guards::{guards, Guard, RequestFacts, Truth};

/// Policies to evaluate: all of them, and the permits alone (to ask "would anything permit
/// this?").
pub struct Policies {
    pub all: PolicySet,
    pub permits: PolicySet,
}

impl Policies {
    fn new(policies: &[Policy]) -> Result<Self, String> {
        let set = |policies: Vec<Policy>| {
            PolicySet::from_policies(policies).map_err(|e| format!("slicing the policy set: {e}"))
        };
        Ok(Self {
            all: set(policies.to_vec())?,
            permits: set(policies
                .iter()
                .filter(|p| p.effect() == cedar_policy::Effect::Permit)
                .cloned()
                .collect())?,
        })
    }
}

/// At most this many distinct guards of a slice choose its variants (two bits each); a policy's
/// guards are read up to the first beyond them.
const MAX_GUARDS: usize = 64;
/// At most this many variants are kept per slice; requests beyond get the whole slice.
const MAX_VARIANTS: usize = 1024;

/// One slice: the policies that could apply to one action on one capability.
pub struct Slice {
    /// Every policy of the slice (what Cedar is asked when nothing can be left out).
    whole: Arc<Policies>,
    /// The slice's policies in order, each with its guards (indices into `guards`), in the order
    /// Cedar evaluates them.
    policies: Vec<(Policy, Vec<usize>)>,
    /// The distinct guards of the slice's policies.
    guards: Vec<Guard>,
    /// Per reading of the guards (two bits each: true, false, or unknown): what remains.
    variants: RwLock<HashMap<u128, Arc<Policies>>>,
}

const TRUE: u128 = 0b01;
const FALSE: u128 = 0b10;

impl Slice {
    fn new(analysed: Vec<Analysed>) -> Result<Self, String> {
        let policies: Vec<Policy> = analysed.iter().map(|(p, _)| p.clone()).collect();
        let whole = Arc::new(Policies::new(&policies)?);
        let mut distinct: Vec<Guard> = Vec::new();
        let policies = analysed
            .into_iter()
            .map(|(policy, guards)| {
                let mut indices = Vec::new();
                for guard in guards.iter() {
                    let index = match distinct.iter().position(|g| g == guard) {
                        Some(index) => index,
                        None => {
                            distinct.push(guard.clone());
                            distinct.len() - 1
                        }
                    };
                    if index >= MAX_GUARDS {
                        // Not read per request: the policy's later guards cannot be used.
                        break;
                    }
                    indices.push(index);
                }
                (policy, indices)
            })
            .collect();
        distinct.truncate(MAX_GUARDS);
        Ok(Self {
            whole,
            policies,
            guards: distinct,
            variants: RwLock::new(HashMap::new()),
        })
    }

    /// Every policy of the slice.
    pub fn whole(&self) -> &Policies {
        &self.whole
    }

    /// The slice's policies that can match a request with these facts: the same answer from
    /// Cedar as [`Self::whole`], with less to evaluate.
    pub fn for_request(&self, facts: &RequestFacts<'_>) -> Arc<Policies> {
        if self.guards.is_empty() {
            return self.whole.clone();
        }
        let mut reading: u128 = 0;
        for (i, guard) in self.guards.iter().enumerate() {
            let bits = match guard.truth(facts) {
                Truth::True => TRUE,
                Truth::False => FALSE,
                Truth::Unknown => 0,
            };
            reading |= bits << (2 * i);
        }
        if let Some(variant) = self
            .variants
            .read()
            .ok()
            .and_then(|variants| variants.get(&reading).cloned())
        {
            return variant;
        }
        let Ok(mut variants) = self.variants.write() else {
            return self.whole.clone();
        };
        if let Some(variant) = variants.get(&reading) {
            return variant.clone();
        }
        if variants.len() >= MAX_VARIANTS {
            return self.whole.clone();
        }
        let read = |i: usize| (reading >> (2 * i)) & 0b11;
        // A policy cannot match when one of its guards reads false after only true ones.
        let can_match = |indices: &[usize]| {
            for &i in indices {
                match read(i) {
                    TRUE => continue,
                    FALSE => return false,
                    _ => return true,
                }
            }
            true
        };
        let remaining: Vec<Policy> = self
            .policies
            .iter()
            .filter(|(_, indices)| can_match(indices))
            .map(|(policy, _)| policy.clone())
            .collect();
        let variant = if remaining.len() == self.policies.len() {
            self.whole.clone()
        } else {
            match Policies::new(&remaining) {
                Ok(variant) => Arc::new(variant),
                Err(_) => return self.whole.clone(),
            }
        };
        variants.insert(reading, variant.clone());
        variant
    }
}

/// The policy set cut into per-request slices.
pub struct PolicySlices {
    /// Per action: the policies whose resource scope is not one specific capability.
    generic: HashMap<Action, Slice>,
    /// Per capability and action: the generic slice plus the policies naming that capability.
    /// Keyed by capability first, so that a lookup borrows the request's uid.
    specific: HashMap<EntityUid, Vec<(Action, Slice)>>,
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

/// A policy with its guards, analysed once.
type Analysed = (Policy, Arc<[Guard]>);

impl PolicySlices {
    pub fn build(policies: &PolicySet) -> Result<Self, String> {
        let mut action_uids = HashMap::new();
        for action in Action::ALL {
            action_uids.insert(action, uid("Action", action.as_str())?);
        }
        let mut generic: HashMap<Action, Vec<Analysed>> = HashMap::new();
        let mut by_capability: HashMap<(Action, EntityUid), Vec<Analysed>> = HashMap::new();
        for policy in policies.policies() {
            let actions = actions_of(policy, &action_uids);
            let specific_to = match policy.resource_constraint() {
                ResourceConstraint::Eq(target) => Some(target),
                ResourceConstraint::Any
                | ResourceConstraint::In(_)
                | ResourceConstraint::Is(_)
                | ResourceConstraint::IsIn(_, _) => None,
            };
            let analysed: Analysed = (policy.clone(), guards(policy).into());
            for action in actions {
                match &specific_to {
                    Some(target) => by_capability
                        .entry((action, target.clone()))
                        .or_default()
                        .push(analysed.clone()),
                    None => generic.entry(action).or_default().push(analysed.clone()),
                }
            }
        }
        let mut specific: HashMap<EntityUid, Vec<(Action, Slice)>> = HashMap::new();
        for ((action, target), own) in by_capability {
            let mut combined = generic.get(&action).cloned().unwrap_or_default();
            combined.extend(own);
            specific
                .entry(target)
                .or_default()
                .push((action, Slice::new(combined)?));
        }
        let mut generic_sets = HashMap::new();
        for action in Action::ALL {
            generic_sets.insert(
                action,
                Slice::new(generic.remove(&action).unwrap_or_default())?,
            );
        }
        Ok(Self {
            generic: generic_sets,
            specific,
        })
    }

    /// The policies that could apply to `action` on `resource`.
    pub fn slice(&self, action: Action, resource: &EntityUid) -> Option<&Slice> {
        self.specific
            .get(resource)
            .and_then(|slices| slices.iter().find(|(a, _)| *a == action))
            .map(|(_, slice)| slice)
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
        let count = |a, r: &EntityUid| slices.slice(a, r).map(|s| s.whole().all.policies().count());
        assert_eq!(count(Action::CallTool, &tool_a), Some(4));
        assert_eq!(count(Action::CallTool, &tool_c), Some(2));
        assert_eq!(count(Action::DiscoverTool, &tool_a), Some(2));
        assert_eq!(count(Action::ReadResource, &tool_a), Some(1));
    }
}

#[cfg(test)]
mod variant_tests {
    use super::*;
    use crate::policy::contract::AttributeValue;
    use crate::policy::guards::CapabilityAttributes;
    use std::collections::BTreeMap;
    use std::str::FromStr;

    #[test]
    fn a_variant_leaves_out_exactly_what_cannot_match() {
        let set = PolicySet::from_str(
            r#"
            @id("any") permit(principal, action, resource);
            @id("agents") forbid(principal is Agent, action, resource);
            @id("drafting") permit(principal in AgentRole::"drafting", action, resource);
            @id("alice") permit(principal == User::"alice", action, resource);
            @id("case") forbid(principal, action, resource) when { context has case && false };
            @id("draft-agent") permit(principal is Agent in AgentRole::"drafting", action, resource)
              when { context has draft };
            @id("reads") permit(principal, action, resource)
              when { resource.effect == "read" && resource.name == "x" };
            @id("names") forbid(principal, action, resource)
              when { resource.name == "x" || context.user in Role::"admin" };
            "#,
        )
        .expect("parse");
        let slices = PolicySlices::build(&set).expect("slices");
        let tool = uid("Tool", "t").expect("uid");
        let slice = slices.slice(Action::CallTool, &tool).expect("slice");
        let agent = uid("Agent", "a-1").expect("uid");
        let drafting = uid("AgentRole", "drafting").expect("uid");
        let alice = uid("User", "alice").expect("uid");
        let admin = uid("Role", "admin").expect("uid");
        let contract = |pairs: &[(&str, &str)]| -> BTreeMap<String, AttributeValue> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), AttributeValue::String(v.to_string())))
                .collect()
        };
        let ids = |principal: &EntityUid,
                   ancestors: Vec<&EntityUid>,
                   user_ancestors: Vec<&EntityUid>,
                   keys: &[&str],
                   contract: &BTreeMap<String, AttributeValue>|
         -> Vec<String> {
            let facts = RequestFacts {
                principal,
                principal_ancestors: ancestors,
                user: &alice,
                user_ancestors,
                context_keys: keys,
                resource: CapabilityAttributes {
                    contract,
                    risk_level: None,
                    uri: None,
                },
            };
            slice
                .for_request(&facts)
                .all
                .policies()
                .map(|p| p.annotation("id").unwrap_or_default().to_string())
                .collect()
        };
        let read_x = contract(&[("effect", "read"), ("name", "x")]);
        let write_y = contract(&[("effect", "write"), ("name", "y")]);
        let unnamed = contract(&[("effect", "read")]);
        assert_eq!(
            ids(&agent, vec![&drafting], vec![], &["user", "case"], &read_x),
            ["any", "agents", "drafting", "case", "reads", "names"]
        );
        assert_eq!(
            ids(
                &agent,
                vec![&drafting],
                vec![],
                &["user", "draft"],
                &write_y
            ),
            ["any", "agents", "drafting", "draft-agent"]
        );
        assert_eq!(
            ids(&alice, vec![], vec![&admin], &["user"], &write_y),
            ["any", "alice", "names"],
            "the user's role makes `names` possible"
        );
        // A guard Cedar could error on (no `name`) keeps the policy, and what follows it.
        assert_eq!(
            ids(&alice, vec![], vec![], &["user"], &unnamed),
            ["any", "alice", "reads", "names"]
        );
        assert_eq!(slice.whole().all.policies().count(), 8);
    }
}
