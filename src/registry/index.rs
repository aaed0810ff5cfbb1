//! Every contract, indexed for the per-call path: tools and prompts by exposed name and by
//! downstream name, resources in registration order (the first template that matches wins).

use std::collections::HashMap;
use std::sync::Arc;

use super::contract::{EntityBinding, PromptContract, ResourceContract, ToolContract};

/// Every contract, indexed for the per-call path.
#[derive(Debug, Default)]
pub struct Registry {
    pub(super) tools: HashMap<String, Arc<ToolContract>>,
    /// By server, then the downstream's own name (looked up without building a key).
    pub(super) tools_by_downstream: HashMap<String, HashMap<String, Arc<ToolContract>>>,
    pub(super) prompts: HashMap<String, Arc<PromptContract>>,
    pub(super) prompts_by_downstream: HashMap<String, HashMap<String, Arc<PromptContract>>>,
    pub(super) resources: Vec<Arc<ResourceContract>>,
}

impl Registry {
    /// The contract behind an exposed tool name.
    pub fn tool(&self, exposed_name: &str) -> Option<&Arc<ToolContract>> {
        self.tools.get(exposed_name)
    }

    /// The contract for a downstream's tool, if the platform team registered one.
    pub fn tool_of(&self, server: &str, name: &str) -> Option<&Arc<ToolContract>> {
        self.tools_by_downstream.get(server)?.get(name)
    }

    pub fn prompt(&self, exposed_name: &str) -> Option<&Arc<PromptContract>> {
        self.prompts.get(exposed_name)
    }

    pub fn prompt_of(&self, server: &str, name: &str) -> Option<&Arc<PromptContract>> {
        self.prompts_by_downstream.get(server)?.get(name)
    }

    /// The resource contract whose template matches `uri`, with the variables it captured.
    pub fn resource_for_uri(
        &self,
        uri: &str,
    ) -> Option<(&Arc<ResourceContract>, HashMap<String, String>)> {
        self.resources
            .iter()
            .find_map(|r| r.template.capture(uri).map(|vars| (r, vars)))
    }

    /// The resource contracts of one server (for listing its templates).
    pub fn resources_of<'a>(
        &'a self,
        server: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceContract>> + 'a {
        self.resources.iter().filter(move |r| r.server == server)
    }

    pub fn tools(&self) -> impl Iterator<Item = &Arc<ToolContract>> {
        self.tools.values()
    }

    pub fn prompts(&self) -> impl Iterator<Item = &Arc<PromptContract>> {
        self.prompts.values()
    }

    pub fn resources(&self) -> impl Iterator<Item = &Arc<ResourceContract>> {
        self.resources.iter()
    }

    /// Every entity type any contract binds (checked against the policy schema at start).
    pub fn bound_entity_types(&self) -> impl Iterator<Item = (&str, &EntityBinding)> {
        let tools = self
            .tools
            .values()
            .flat_map(|t| t.entities.iter().map(move |b| (t.exposed_name.as_str(), b)));
        let prompts = self
            .prompts
            .values()
            .flat_map(|p| p.entities.iter().map(move |b| (p.exposed_name.as_str(), b)));
        let resources = self
            .resources
            .iter()
            .flat_map(|r| r.entities.iter().map(move |b| (r.name.as_str(), b)));
        tools.chain(prompts).chain(resources)
    }
}
