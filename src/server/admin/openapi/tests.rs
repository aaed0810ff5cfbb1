//! The document against the code: its operations are the router's routes (both ways), each
//! request body is the schema of the type its handler reads, what a schema names is what serde
//! reads, and each query's parameters are the fields of the handler's query type.

use std::collections::BTreeSet;

use axum::extract::{Path, Query};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use utoipa::openapi::path::ParameterIn;
use utoipa::{IntoParams, PartialSchema};

use super::super::approvals::{self, DecisionNote};
use super::super::{decisions, kill_switches, overview, platform, runs, tools, Endpoint};

const METHODS: [&str; 9] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace", "query",
];

fn operation(doc: &Value, endpoint: Endpoint) -> &Value {
    let (method, path) = endpoint.route();
    &doc["paths"][path][method.to_lowercase()]
}

/// A request body as a handler reads it: the schema of its type, and serde's verdict on a
/// JSON value.
struct Body {
    schema: Value,
    reads: fn(Value) -> Result<(), String>,
}

impl Body {
    fn of<T: PartialSchema + DeserializeOwned>() -> Self {
        Self {
            schema: serde_json::to_value(T::schema()).expect("a schema serializes"),
            reads: |value| {
                serde_json::from_value::<T>(value)
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        }
    }
}

/// The body type of a handler `(State, Extension, Json<T>)`, from its signature.
fn json_body<F, A, B, T, Fut>(_handler: F) -> Body
where
    F: Fn(A, B, Json<T>) -> Fut,
    T: PartialSchema + DeserializeOwned,
{
    Body::of::<T>()
}

/// Every endpoint that takes a body, with the type it reads.
fn bodies() -> Vec<(Endpoint, Body)> {
    vec![
        (
            Endpoint::Relationships,
            json_body(platform::update_relationships),
        ),
        (Endpoint::KillSwitchSet, json_body(kill_switches::set)),
        (Endpoint::KillSwitchLift, json_body(kill_switches::lift)),
        (Endpoint::BreakGlassOpen, json_body(approvals::open_grant)),
        (Endpoint::ToolAccept, json_body(tools::accept)),
        // These read their bytes themselves (an empty body is no note) as a DecisionNote.
        (Endpoint::Approve, Body::of::<DecisionNote>()),
        (Endpoint::Reject, Body::of::<DecisionNote>()),
    ]
}

/// `#/components/schemas/X` resolved; an optional body's `oneOf [X, null]` as X.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .expect("a reference into the document's components");
        let target = &doc["components"]["schemas"][name];
        assert!(target.is_object(), "{reference} is not in the document");
        return resolve(doc, target);
    }
    if let Some([only, null]) = schema["oneOf"].as_array().map(Vec::as_slice) {
        if null["type"] == "null" {
            return resolve(doc, only);
        }
    }
    schema
}

/// `schema` with every reference replaced by the component it names.
fn inlined(doc: &Value, schema: &Value) -> Value {
    match schema {
        Value::Object(fields) if fields.contains_key("$ref") => inlined(doc, resolve(doc, schema)),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, value)| (name.clone(), inlined(doc, value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| inlined(doc, i)).collect()),
        other => other.clone(),
    }
}

#[test]
fn every_route_is_described_and_every_description_is_a_route() {
    let doc = super::openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    let routes: BTreeSet<(String, String)> = Endpoint::ALL
        .iter()
        .map(|e| {
            let (method, path) = e.route();
            (method.to_lowercase(), path.to_string())
        })
        .collect();
    assert_eq!(routes.len(), Endpoint::ALL.len(), "a route is served twice");
    let paths = doc["paths"].as_object().expect("paths");
    let described: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(move |m| (m.to_string(), path.clone()))
        })
        .collect();
    let undescribed: Vec<_> = routes.difference(&described).collect();
    let not_served: Vec<_> = described.difference(&routes).collect();
    assert!(
        undescribed.is_empty(),
        "routes not described: {undescribed:?}"
    );
    assert!(
        not_served.is_empty(),
        "described, not served: {not_served:?}"
    );
}

#[test]
fn every_route_but_metrics_needs_a_token_and_says_so() {
    let doc = super::openapi();
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["console_session"]["in"], "cookie");
    for endpoint in Endpoint::ALL {
        let operation = operation(&doc, endpoint);
        if endpoint.authenticated() {
            assert_eq!(
                operation["security"],
                json!([{"bearer": []}, {"console_session": []}]),
                "{endpoint:?}"
            );
            for status in ["200", "401", "403"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{endpoint:?}: {status}"
                );
            }
        } else {
            assert!(operation.get("security").is_none(), "{endpoint:?}");
        }
    }
}

#[test]
fn request_bodies_are_the_types_the_handlers_read() {
    let doc = super::openapi();
    let bodies = bodies();
    for endpoint in Endpoint::ALL {
        let described = &operation(&doc, endpoint)["requestBody"];
        match bodies.iter().find(|(e, _)| *e == endpoint) {
            None => assert!(
                described.is_null(),
                "{endpoint:?} reads no body, yet the document describes one: {described}"
            ),
            Some((_, body)) => {
                let schema = &described["content"]["application/json"]["schema"];
                assert_eq!(
                    inlined(&doc, resolve(&doc, schema)),
                    inlined(&doc, &body.schema),
                    "{endpoint:?}: the document's body is not the handler's type"
                );
            }
        }
    }
}

#[test]
fn what_a_body_schema_names_is_what_serde_reads() {
    let doc = super::openapi();
    for (endpoint, body) in bodies() {
        for all in [false, true] {
            for example in examples(&doc, &body.schema, all) {
                if let Err(error) = (body.reads)(example.clone()) {
                    panic!("{endpoint:?}: {example} follows the document, yet: {error}");
                }
                if !example.is_object() || body.schema["additionalProperties"] != false {
                    continue;
                }
                let mut extra = example.clone();
                extra["not_in_the_document"] = json!("x");
                assert!(
                    (body.reads)(extra.clone()).is_err(),
                    "{endpoint:?}: the document forbids other fields, yet {extra} is read"
                );
            }
        }
    }
}

/// The query parameters of a handler `(State, Extension, Query<Q>)`, from its signature.
fn query_of<F, A, B, Q, Fut>(_handler: F) -> BTreeSet<String>
where
    F: Fn(A, B, Query<Q>) -> Fut,
    Q: IntoParams,
{
    names::<Q>()
}

/// The query parameters of a handler `(State, Extension, Path<P>, Query<Q>)`.
fn query_after_path<F, A, B, P, Q, Fut>(_handler: F) -> BTreeSet<String>
where
    F: Fn(A, B, Path<P>, Query<Q>) -> Fut,
    Q: IntoParams,
{
    names::<Q>()
}

fn names<Q: IntoParams>() -> BTreeSet<String> {
    Q::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .map(|p| p.name)
        .collect()
}

#[test]
fn parameters_are_the_handlers_query_fields_and_the_paths_placeholders() {
    let doc = super::openapi();
    let queries = [
        (Endpoint::Decisions, query_of(decisions::list)),
        (
            Endpoint::DecisionRecord,
            query_after_path(decisions::record),
        ),
        (Endpoint::Overview, query_of(overview::overview)),
        (Endpoint::Runs, query_of(runs::run_manifest)),
        (Endpoint::Budgets, query_of(runs::budget_usage)),
    ];
    for endpoint in Endpoint::ALL {
        let parameters = operation(&doc, endpoint)["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let named_in = |place: &str| -> BTreeSet<String> {
            parameters
                .iter()
                .filter(|p| p["in"] == place)
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect()
        };
        let wanted = queries
            .iter()
            .find(|(e, _)| *e == endpoint)
            .map(|(_, names)| names.clone())
            .unwrap_or_default();
        assert_eq!(named_in("query"), wanted, "{endpoint:?}: query parameters");
        let (_, path) = endpoint.route();
        let placeholders: BTreeSet<String> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_string)
            .collect();
        assert_eq!(
            named_in("path"),
            placeholders,
            "{endpoint:?}: path parameters"
        );
    }
}

/// JSON values that follow `schema`: with only its required properties, or with all of them
/// (`all`); one per branch of a `oneOf`.
fn examples(doc: &Value, schema: &Value, all: bool) -> Vec<Value> {
    let schema = resolve(doc, schema);
    if let Some(branches) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
        return branches
            .iter()
            .filter(|b| b["type"] != "null")
            .flat_map(|b| examples(doc, b, all))
            .collect();
    }
    if let Some(parts) = schema["allOf"].as_array() {
        let mut merged = vec![Map::new()];
        for part in parts {
            let mut next = Vec::new();
            for base in &merged {
                for example in examples(doc, part, all) {
                    let mut object = base.clone();
                    if let Value::Object(fields) = example {
                        object.extend(fields);
                    }
                    next.push(object);
                }
            }
            merged = next;
        }
        return merged.into_iter().map(Value::Object).collect();
    }
    let kind = match &schema["type"] {
        Value::String(kind) => kind.as_str(),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ => "any",
    };
    let value = match kind {
        "object" => {
            let required: BTreeSet<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let mut objects = vec![Map::new()];
            let properties = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (name, property) in &properties {
                if !all && !required.contains(name.as_str()) {
                    continue;
                }
                let choices = examples(doc, property, all);
                objects = objects
                    .into_iter()
                    .flat_map(|object| {
                        choices.iter().map(move |choice| {
                            let mut object = object.clone();
                            object.insert(name.clone(), choice.clone());
                            object
                        })
                    })
                    .collect();
            }
            return objects.into_iter().map(Value::Object).collect();
        }
        "string" => match schema["enum"].as_array().and_then(|e| e.first()) {
            Some(value) => value.clone(),
            None => {
                let length = schema["minLength"].as_u64().unwrap_or(1).max(1);
                json!("x".repeat(usize::try_from(length).unwrap_or(1)))
            }
        },
        "integer" => json!(schema["minimum"].as_i64().unwrap_or(1)),
        "number" => json!(1.5),
        "boolean" => json!(true),
        "array" => {
            let items = examples(doc, &schema["items"], all);
            json!([items.into_iter().next().unwrap_or(json!({}))])
        }
        "null" => Value::Null,
        // No type: any JSON value.
        _ => json!({}),
    };
    vec![value]
}
