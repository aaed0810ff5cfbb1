//! Discovery (`tools/list`, `resources/list`, `resources/templates/list`, `prompts/list`): one
//! generic function decides every candidate the same way a call would be stopped and decided,
//! shows only what the actor may use, and logs one summary record per request.

use rmcp::model::{Prompt, Resource, ResourceTemplate, Tool};

use crate::identity::CompositeActor;
use crate::policy::{Action, ActorFacts, PolicyRequest};

use super::capability::Target;
use super::listing::Listing;
use super::pinning::PinState;
use super::refusal::Refusal;
use super::requests::{prompt_request, resource_request, tool_request, Asker};
use super::{downstream_meta, Gateway};

/// One capability a discovery request may show.
struct Candidate<I> {
    /// How the summary record names it: the exposed name, or the URI (template).
    label: String,
    item: I,
    target: Target,
    request: Result<PolicyRequest, Refusal>,
}

impl Gateway {
    /// Decides each candidate: killed → hidden; unbindable → hidden; allowed (or covered by
    /// break-glass) → shown; otherwise hidden with its decision.
    fn discover<I>(
        &self,
        actor: &CompositeActor,
        action: Action,
        method: &'static str,
        candidates: Vec<Candidate<I>>,
    ) -> Vec<I> {
        let mut listing = Listing::new(action, method);
        let mut visible = Vec::new();
        for candidate in candidates {
            let name = &candidate.label;
            if let Err(refusal) = self.controls.stop(actor, &candidate.target) {
                listing.hide_undecided(name, refusal.kind(), refusal.detailed());
                continue;
            }
            let request = match candidate.request {
                Ok(request) => request,
                Err(refusal) => {
                    listing.hide_undecided(name, refusal.kind(), refusal.detailed());
                    continue;
                }
            };
            let decision = self.decide(&request, &candidate.target.name);
            let granted = decision.break_glass_may_override
                && self
                    .controls
                    .break_glass_for(actor, &candidate.target.name)
                    .is_some();
            if decision.is_allow() || granted {
                listing.show(name, Some(&decision));
                visible.push(candidate.item);
            } else {
                listing.hide_decided(name, &decision);
            }
        }
        self.log.append(listing.into_record(actor, &self.policy));
        visible
    }

    /// The tools this actor may use: contracted, offered by a live downstream, and allowed.
    pub fn list_tools(&self, actor: &CompositeActor) -> Vec<Tool> {
        let facts = ActorFacts::from_actor(actor);
        let mut candidates = Vec::new();
        for server in self.downstreams.iter() {
            for listed in &server.catalogue().tools {
                let Some(contract) = self.registry.tool_of(&server.id, &listed.tool.name) else {
                    continue;
                };
                let mut tool = listed.tool.clone();
                tool.name = contract.exposed_name.clone().into();
                let request = match self.pin_state(contract, listed) {
                    PinState::Quarantined { pinned, seen } => Err(Refusal::Quarantined {
                        name: contract.exposed_name.clone(),
                        pinned,
                        seen,
                    }),
                    PinState::Matches | PinState::Unpinned => {
                        tool_request(asker(actor, &facts), Action::DiscoverTool, contract, None)
                            .map_err(Refusal::Unbound)
                    }
                };
                candidates.push(Candidate {
                    label: contract.exposed_name.clone(),
                    item: tool,
                    target: Target::of_tool(contract, listed.definition_hash.clone()),
                    request,
                });
            }
        }
        let mut visible = self.discover(actor, Action::DiscoverTool, "tools/list", candidates);
        visible.sort_by(|a, b| a.name.cmp(&b.name));
        visible
    }

    /// Concrete resources the actor may see, from every server with resource contracts.
    pub async fn list_resources(&self, actor: &CompositeActor) -> Vec<Resource> {
        let facts = ActorFacts::from_actor(actor);
        let mut candidates = Vec::new();
        for server in self.downstreams.iter() {
            if self.registry.resources_of(&server.id).next().is_none() {
                continue;
            }
            let listed = match server
                .list_resources(downstream_meta(actor, &Default::default()))
                .await
            {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::warn!(server = %server.id, error = %e, "resources/list failed");
                    continue;
                }
            };
            for resource in listed {
                let Some((contract, variables)) = self
                    .registry
                    .resource_for_uri(&resource.uri)
                    .filter(|(c, _)| c.server == server.id)
                else {
                    // Uncontracted: never shown. Named in the summary by its URI.
                    candidates.push(Candidate {
                        label: resource.uri.clone(),
                        target: Target {
                            server: server.id.clone(),
                            name: resource.uri.clone(),
                            effect: crate::registry::Effect::Read,
                            cost: 0,
                            fail_open: false,
                            definition_hash: String::new(),
                        },
                        request: Err(Refusal::Unknown {
                            kind: "resource",
                            name: resource.uri.clone(),
                        }),
                        item: resource,
                    });
                    continue;
                };
                candidates.push(Candidate {
                    label: resource.uri.clone(),
                    target: Target::of_resource(contract),
                    request: Ok(resource_request(
                        asker(actor, &facts),
                        Action::DiscoverResource,
                        contract,
                        &resource.uri,
                        Some(&variables),
                    )),
                    item: resource,
                });
            }
        }
        self.discover(
            actor,
            Action::DiscoverResource,
            "resources/list",
            candidates,
        )
    }

    /// Resource templates the actor may see: only those a contract registers.
    pub fn list_resource_templates(&self, actor: &CompositeActor) -> Vec<ResourceTemplate> {
        let facts = ActorFacts::from_actor(actor);
        let mut candidates = Vec::new();
        for server in self.downstreams.iter() {
            for template in &server.catalogue().resource_templates {
                let Some(contract) = self
                    .registry
                    .resources_of(&server.id)
                    .find(|c| c.template.source == template.uri_template)
                else {
                    continue;
                };
                // A template names no entity yet: it is decided on the contract alone.
                candidates.push(Candidate {
                    label: template.uri_template.clone(),
                    item: template.clone(),
                    target: Target::of_resource(contract),
                    request: Ok(resource_request(
                        asker(actor, &facts),
                        Action::DiscoverResource,
                        contract,
                        &template.uri_template,
                        None,
                    )),
                });
            }
        }
        self.discover(
            actor,
            Action::DiscoverResource,
            "resources/templates/list",
            candidates,
        )
    }

    /// The prompts this actor may use.
    pub fn list_prompts(&self, actor: &CompositeActor) -> Vec<Prompt> {
        let facts = ActorFacts::from_actor(actor);
        let mut candidates = Vec::new();
        for server in self.downstreams.iter() {
            for listed in &server.catalogue().prompts {
                let Some(contract) = self.registry.prompt_of(&server.id, &listed.name) else {
                    continue;
                };
                let mut prompt = listed.clone();
                prompt.name = contract.exposed_name.clone();
                candidates.push(Candidate {
                    label: contract.exposed_name.clone(),
                    item: prompt,
                    target: Target::of_prompt(contract),
                    request: prompt_request(
                        asker(actor, &facts),
                        Action::DiscoverPrompt,
                        contract,
                        None,
                    )
                    .map_err(Refusal::Unbound),
                });
            }
        }
        let mut visible = self.discover(actor, Action::DiscoverPrompt, "prompts/list", candidates);
        visible.sort_by(|a, b| a.name.cmp(&b.name));
        visible
    }
}

fn asker<'a>(actor: &'a CompositeActor, facts: &'a ActorFacts) -> Asker<'a> {
    Asker {
        facts,
        tenant: &actor.tenant,
        run_id: actor.run_id.as_deref(),
    }
}
