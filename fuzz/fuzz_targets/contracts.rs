//! Contract files (`capabilities/*.toml`), read and checked as at start, over arbitrary text
//! (seeds: the repository's contracts and the test fixtures'); then every contract of a file
//! that was accepted is turned into a policy request, as discovery does.
//!
//! Invariants: no panic; a refusal names the file; an accepted file exposes each name once,
//! binds only valid entity type names to distinct context keys none of which capgate fills
//! itself, and binds only variables its resource templates have.

#![no_main]

use std::collections::HashSet;

use capgate::enforce::{prompt_request, resource_request, tool_request, Asker};
use capgate::policy::contract::UserFacts;
use capgate::policy::{Action, ActorFacts};
use libfuzzer_sys::fuzz_target;

const RESERVED: [&str; 8] = [
    "user",
    "tenant",
    "delegation_depth",
    "service",
    "run_id",
    "arguments",
    "risk",
    "runtime",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let registry = match capgate::fuzzing::contracts_from_text("fuzz.toml", text) {
        Ok(registry) => registry,
        Err(error) => {
            assert!(error.file.starts_with("fuzz.toml"), "{error}");
            return;
        }
    };
    let mut exposed = HashSet::new();
    for name in registry
        .tools()
        .map(|t| t.exposed_name.clone())
        .chain(registry.prompts().map(|p| p.exposed_name.clone()))
        .chain(registry.resources().map(|r| r.exposed_name.clone()))
    {
        assert!(exposed.insert(name.clone()), "`{name}` exposed twice");
    }
    for (_, binding) in registry.bound_entity_types() {
        let t = &binding.entity_type;
        assert!(t.starts_with(|c: char| c.is_ascii_uppercase()) && t.chars().all(|c| c.is_ascii_alphanumeric()), "{t:?}");
        assert!(!RESERVED.contains(&binding.context_key.as_str()), "{binding:?}");
    }
    for resource in registry.resources() {
        let variables: Vec<&str> = resource.template.variables().collect();
        for binding in &resource.entities {
            assert!(variables.contains(&binding.argument.as_str()), "{binding:?}");
        }
    }
    let facts = ActorFacts {
        user: UserFacts {
            id: "alice".into(),
            roles: vec!["analyst".into()],
            scopes: Vec::new(),
        },
        agent: None,
        service: None,
        delegation_chain: vec!["alice".into()],
    };
    let asker = Asker {
        facts: &facts,
        tenant: "acme",
        run_id: None,
    };
    let engine = capgate_fuzz::engine();
    for tool in registry.tools() {
        let request = tool_request(asker, Action::DiscoverTool, tool, None).expect("discovery never binds");
        let _ = engine.decide(&request);
    }
    for prompt in registry.prompts() {
        let request = prompt_request(asker, Action::DiscoverPrompt, prompt, None).expect("discovery never binds");
        let _ = engine.decide(&request);
    }
    for resource in registry.resources() {
        let request = resource_request(asker, Action::DiscoverResource, resource, &resource.template.source, None);
        let _ = engine.decide(&request);
    }
});
