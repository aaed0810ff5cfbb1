//! Guards: the first tests a policy's condition makes, when their values are known from what a
//! request plainly states, before Cedar runs. A policy whose guards read true, true, ..., false
//! evaluates to false without error, so leaving it out of Cedar's input changes nothing Cedar
//! answers (decision, determining policies, errors); `slice.rs` does that.
//!
//! Why that holds: Cedar evaluates a policy as `principal scope && action scope && resource
//! scope && condition`, where the condition is its `when` and `unless` clauses joined by `&&`
//! in order, and `a && b` evaluates `b` only if `a` is true. Scopes never error. So if the
//! principal scope is false, or the first clause is a `when` whose leading `&&` operands are
//! guards that hold without error up to one that is false, the whole policy is false, without
//! error. A guard is only one of these shapes, each evaluated exactly as Cedar would:
//!
//! - the principal scope: `principal is T`, `principal == E`, `principal in E`;
//! - `context has k` (the context is a record capgate builds, with known keys);
//! - `principal in E`, `context.user in E` (both entities always exist in the request);
//! - `resource.a == "s"`, `resource.a != "s"`, `["s", ..].contains(resource.a)`, over the
//!   capability's attributes as capgate builds them; unknown when the attribute is absent
//!   (Cedar would error);
//! - `g || h || ..` of guards, evaluated left to right.
//!
//! Anything else ends the analysis: what follows it is never used.

use std::collections::BTreeMap;

use cedar_policy::{EntityTypeName, EntityUid, Policy, PrincipalConstraint};
use serde_json::Value;

use super::contract::AttributeValue;

/// A test whose value a request's plain facts decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    PrincipalIs(EntityTypeName),
    PrincipalEq(EntityUid),
    /// The principal is this entity or one of its descendants.
    PrincipalIn(EntityUid),
    /// `context.user` is this entity or one of its descendants.
    UserIn(EntityUid),
    ContextHas(String),
    ResourceEq(String, String),
    ResourceNe(String, String),
    /// `["s", ..].contains(resource.a)`.
    ResourceOneOf(String, Vec<String>),
    /// The first that is not false decides; all false is false.
    AnyOf(Vec<Guard>),
}

/// A guard's value for one request: `Unknown` when Cedar could error on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}

impl From<bool> for Truth {
    fn from(value: bool) -> Self {
        if value {
            Truth::True
        } else {
            Truth::False
        }
    }
}

/// A capability attribute as capgate builds it into the request's resource entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceAttribute<'a> {
    Absent,
    String(&'a str),
    /// A long, a boolean or a set: never equal to a string.
    Other,
}

impl<'a> From<Option<&'a AttributeValue>> for ResourceAttribute<'a> {
    fn from(value: Option<&'a AttributeValue>) -> Self {
        match value {
            None => ResourceAttribute::Absent,
            Some(AttributeValue::String(s)) => ResourceAttribute::String(s),
            Some(AttributeValue::Bool(_) | AttributeValue::Long(_) | AttributeValue::Set(_)) => {
                ResourceAttribute::Other
            }
        }
    }
}

/// The capability's attributes exactly as capgate builds the request's resource entity: the
/// contract's, with `risk_level` (from a valid `risk`) and, for resources, `uri` derived.
#[derive(Clone, Copy)]
pub struct CapabilityAttributes<'a> {
    pub contract: &'a BTreeMap<String, AttributeValue>,
    pub risk_level: Option<i64>,
    pub uri: Option<&'a str>,
}

impl<'a> CapabilityAttributes<'a> {
    pub fn get(&self, name: &str) -> ResourceAttribute<'a> {
        match (name, self.risk_level, self.uri) {
            ("risk_level", Some(_), _) => ResourceAttribute::Other,
            ("uri", _, Some(uri)) => ResourceAttribute::String(uri),
            _ => self.contract.get(name).into(),
        }
    }
}

/// What a request states plainly, before Cedar runs: enough to tell the guards' values.
pub struct RequestFacts<'a> {
    pub principal: &'a EntityUid,
    /// The principal's ancestors in the request's entities (transitively closed).
    pub principal_ancestors: Vec<&'a EntityUid>,
    pub user: &'a EntityUid,
    pub user_ancestors: Vec<&'a EntityUid>,
    pub context_keys: &'a [&'a str],
    pub resource: CapabilityAttributes<'a>,
}

impl Guard {
    pub fn truth(&self, facts: &RequestFacts<'_>) -> Truth {
        let within = |who: &EntityUid, ancestors: &[&EntityUid], target: &EntityUid| {
            Truth::from(who == target || ancestors.contains(&target))
        };
        match self {
            Guard::PrincipalIs(type_name) => (facts.principal.type_name() == type_name).into(),
            Guard::PrincipalEq(target) => (facts.principal == target).into(),
            Guard::PrincipalIn(target) => {
                within(facts.principal, &facts.principal_ancestors, target)
            }
            Guard::UserIn(target) => within(facts.user, &facts.user_ancestors, target),
            Guard::ContextHas(key) => facts.context_keys.contains(&key.as_str()).into(),
            Guard::ResourceEq(name, literal) => match facts.resource.get(name) {
                ResourceAttribute::Absent => Truth::Unknown,
                ResourceAttribute::String(value) => (value == literal).into(),
                ResourceAttribute::Other => Truth::False,
            },
            Guard::ResourceNe(name, literal) => match facts.resource.get(name) {
                ResourceAttribute::Absent => Truth::Unknown,
                ResourceAttribute::String(value) => (value != literal).into(),
                ResourceAttribute::Other => Truth::True,
            },
            Guard::ResourceOneOf(name, literals) => match facts.resource.get(name) {
                ResourceAttribute::Absent => Truth::Unknown,
                ResourceAttribute::String(value) => literals.iter().any(|l| l == value).into(),
                ResourceAttribute::Other => Truth::False,
            },
            Guard::AnyOf(guards) => {
                for guard in guards {
                    match guard.truth(facts) {
                        Truth::False => continue,
                        decided => return decided,
                    }
                }
                Truth::False
            }
        }
    }
}

/// The guards of a policy, in the order Cedar evaluates them; the first that reads false
/// (after only true ones) means the policy cannot match.
pub fn guards(policy: &Policy) -> Vec<Guard> {
    let mut guards = match policy.principal_constraint() {
        PrincipalConstraint::Any => Vec::new(),
        PrincipalConstraint::Eq(target) => vec![Guard::PrincipalEq(target)],
        PrincipalConstraint::In(target) => vec![Guard::PrincipalIn(target)],
        PrincipalConstraint::Is(type_name) => vec![Guard::PrincipalIs(type_name)],
        PrincipalConstraint::IsIn(type_name, target) => {
            vec![Guard::PrincipalIs(type_name), Guard::PrincipalIn(target)]
        }
    };
    if let Some(body) = policy.to_json().ok().as_ref().and_then(first_when_body) {
        leading_guards(body, &mut guards);
    }
    guards
}

/// The body of a policy's first condition (JSON form), if that condition is a `when`.
fn first_when_body(policy: &Value) -> Option<&Value> {
    let first = policy.get("conditions")?.as_array()?.first()?;
    (first.get("kind")?.as_str()? == "when")
        .then(|| first.get("body"))
        .flatten()
}

/// Appends the guards `expr` starts with; returns whether all of `expr` was guards (so that
/// what follows it may be read too).
fn leading_guards(expr: &Value, out: &mut Vec<Guard>) -> bool {
    if let Some(and) = single(expr, "&&") {
        return match (and.get("left"), and.get("right")) {
            (Some(left), Some(right)) => leading_guards(left, out) && leading_guards(right, out),
            _ => false,
        };
    }
    match guard(expr) {
        Some(guard) => {
            out.push(guard);
            true
        }
        None => false,
    }
}

/// The operand object of `{"<op>": {...}}`, when `expr` is exactly that.
fn single<'a>(expr: &'a Value, op: &str) -> Option<&'a Value> {
    let object = expr.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.get(op)
}

fn operands<'a>(expr: &'a Value, op: &str) -> Option<(&'a Value, &'a Value)> {
    let operands = single(expr, op)?;
    Some((operands.get("left")?, operands.get("right")?))
}

fn is_var(expr: &Value, var: &str) -> bool {
    single(expr, "Var").and_then(Value::as_str) == Some(var)
}

/// `a` of `<var>.a`.
fn attribute_of<'a>(expr: &'a Value, var: &str) -> Option<&'a str> {
    let access = single(expr, ".")?;
    if !is_var(access.get("left")?, var) {
        return None;
    }
    access.get("attr")?.as_str()
}

fn string_literal(expr: &Value) -> Option<String> {
    single(expr, "Value")?.as_str().map(str::to_string)
}

fn entity_literal(expr: &Value) -> Option<EntityUid> {
    let entity = single(single(expr, "Value")?, "__entity")?;
    EntityUid::from_json(entity.clone()).ok()
}

/// The guard `expr` is, if it is one.
fn guard(expr: &Value) -> Option<Guard> {
    if let Some(has) = single(expr, "has") {
        if !is_var(has.get("left")?, "context") {
            return None;
        }
        // Only the plain form: `context has a.b` has a list of attributes.
        return has
            .get("attr")?
            .as_str()
            .map(|key| Guard::ContextHas(key.to_string()));
    }
    if let Some((left, right)) = operands(expr, "in") {
        let target = entity_literal(right)?;
        if is_var(left, "principal") {
            return Some(Guard::PrincipalIn(target));
        }
        return (attribute_of(left, "context")? == "user").then_some(Guard::UserIn(target));
    }
    if let Some((left, right)) = operands(expr, "==") {
        return Some(Guard::ResourceEq(
            attribute_of(left, "resource")?.to_string(),
            string_literal(right)?,
        ));
    }
    if let Some((left, right)) = operands(expr, "!=") {
        return Some(Guard::ResourceNe(
            attribute_of(left, "resource")?.to_string(),
            string_literal(right)?,
        ));
    }
    if let Some((left, right)) = operands(expr, "contains") {
        let literals = single(left, "Set")?
            .as_array()?
            .iter()
            .map(string_literal)
            .collect::<Option<Vec<String>>>()?;
        return Some(Guard::ResourceOneOf(
            attribute_of(right, "resource")?.to_string(),
            literals,
        ));
    }
    if let Some((left, right)) = operands(expr, "||") {
        let mut any = Vec::new();
        for side in [left, right] {
            match guard(side)? {
                Guard::AnyOf(inner) => any.extend(inner),
                other => any.push(other),
            }
        }
        return Some(Guard::AnyOf(any));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn guards_of(text: &str) -> Vec<Guard> {
        guards(&Policy::from_str(text).expect("parse"))
    }

    fn uid(text: &str) -> EntityUid {
        EntityUid::from_str(text).expect("uid")
    }

    #[test]
    fn guards_are_read_in_evaluation_order_up_to_the_first_other_test() {
        let p = "permit(principal, action, resource)";
        assert_eq!(
            guards_of(&format!("{p} when {{ context has case }};")),
            [Guard::ContextHas("case".into())]
        );
        assert_eq!(
            guards_of(
                r#"permit(principal is Agent in AgentRole::"d", action, resource) when {
                   (principal in AgentRole::"a" || context.user in Role::"r") &&
                   resource.server == "case" && resource.effect != "read" &&
                   ["x", "y"].contains(resource.name) && context.case.team == 1 &&
                   context has draft };"#
            ),
            [
                Guard::PrincipalIs(EntityTypeName::from_str("Agent").expect("type")),
                Guard::PrincipalIn(uid(r#"AgentRole::"d""#)),
                Guard::AnyOf(vec![
                    Guard::PrincipalIn(uid(r#"AgentRole::"a""#)),
                    Guard::UserIn(uid(r#"Role::"r""#)),
                ]),
                Guard::ResourceEq("server".into(), "case".into()),
                Guard::ResourceNe("effect".into(), "read".into()),
                Guard::ResourceOneOf("name".into(), vec!["x".into(), "y".into()]),
            ]
        );
        assert_eq!(
            guards_of(&format!(
                "{p} when {{ (context has draft && true) && context has case }};"
            )),
            [Guard::ContextHas("draft".into())],
            "`true` is not a guard, so nothing after it is read"
        );
        for none in [
            format!("{p};"),
            format!("{p} unless {{ context has case }};"),
            format!("{p} unless {{ false }} when {{ context has case }};"),
            format!("{p} when {{ true && context has case }};"),
            format!("{p} when {{ context has case || true }};"),
            format!("{p} when {{ !(context has case) }};"),
            format!("{p} when {{ context.arguments has scope }};"),
            format!("{p} when {{ context has case.team }};"),
            format!("{p} when {{ principal has case }};"),
            format!("{p} when {{ \"case\" == resource.server }};"),
            format!("{p} when {{ resource.cost == 1 }};"),
            format!("{p} when {{ context.tenant == Tenant::\"a\" }};"),
            format!("{p} when {{ principal in [AgentRole::\"a\"] }};"),
            format!("{p} when {{ context.case in Tenant::\"a\" }};"),
            format!("{p} when {{ [\"a\", 1].contains(resource.name) }};"),
            format!("{p} when {{ resource.name.contains(\"a\") }};"),
        ] {
            assert_eq!(guards_of(&none), [], "{none}");
        }
    }

    #[test]
    fn guards_read_as_cedar_evaluates_them() {
        let agent = uid(r#"Agent::"a-1""#);
        let role = uid(r#"AgentRole::"drafting""#);
        let user = uid(r#"User::"alice""#);
        let analyst = uid(r#"Role::"analyst""#);
        let contract = BTreeMap::from([
            ("server".to_string(), AttributeValue::String("case".into())),
            ("cost".to_string(), AttributeValue::Long(1)),
            ("uri".to_string(), AttributeValue::String("case".into())),
        ]);
        let attributes = CapabilityAttributes {
            contract: &contract,
            risk_level: Some(1),
            uri: None,
        };
        assert_eq!(attributes.get("risk_level"), ResourceAttribute::Other);
        assert_eq!(attributes.get("uri"), ResourceAttribute::String("case"));
        let derived = CapabilityAttributes {
            uri: Some("case://1"),
            ..attributes
        };
        assert_eq!(derived.get("uri"), ResourceAttribute::String("case://1"));
        let facts = RequestFacts {
            principal: &agent,
            principal_ancestors: vec![&role],
            user: &user,
            user_ancestors: vec![&analyst],
            context_keys: &["user", "case"],
            resource: CapabilityAttributes {
                contract: &contract,
                risk_level: None,
                uri: None,
            },
        };
        let truth = |guard: Guard| guard.truth(&facts);
        assert_eq!(truth(Guard::PrincipalIn(role.clone())), Truth::True);
        assert_eq!(truth(Guard::PrincipalIn(agent.clone())), Truth::True);
        assert_eq!(truth(Guard::PrincipalIn(analyst.clone())), Truth::False);
        assert_eq!(truth(Guard::PrincipalEq(role.clone())), Truth::False);
        assert_eq!(truth(Guard::UserIn(analyst.clone())), Truth::True);
        assert_eq!(truth(Guard::UserIn(role.clone())), Truth::False);
        assert_eq!(truth(Guard::ContextHas("draft".into())), Truth::False);
        let eq = |name: &str, value: &str| Guard::ResourceEq(name.into(), value.into());
        assert_eq!(truth(eq("server", "case")), Truth::True);
        assert_eq!(truth(eq("server", "mail")), Truth::False);
        assert_eq!(truth(eq("cost", "1")), Truth::False);
        assert_eq!(truth(eq("name", "x")), Truth::Unknown);
        let ne = |name: &str, value: &str| Guard::ResourceNe(name.into(), value.into());
        assert_eq!(truth(ne("server", "case")), Truth::False);
        assert_eq!(truth(ne("cost", "1")), Truth::True);
        assert_eq!(truth(ne("name", "x")), Truth::Unknown);
        let one_of =
            |name: &str| Guard::ResourceOneOf(name.into(), vec!["a".into(), "case".into()]);
        assert_eq!(truth(one_of("server")), Truth::True);
        assert_eq!(truth(one_of("cost")), Truth::False);
        assert_eq!(truth(one_of("name")), Truth::Unknown);
        // `||` stops at the first operand that is not false, as Cedar does.
        assert_eq!(
            truth(Guard::AnyOf(vec![
                eq("server", "mail"),
                eq("name", "x"),
                eq("server", "case")
            ])),
            Truth::Unknown
        );
        assert_eq!(
            truth(Guard::AnyOf(vec![eq("server", "case"), eq("name", "x")])),
            Truth::True
        );
        assert_eq!(
            truth(Guard::AnyOf(vec![eq("server", "mail"), eq("cost", "1")])),
            Truth::False
        );
    }
}
