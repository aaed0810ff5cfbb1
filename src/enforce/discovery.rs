//! Discovery (`tools/list`, `resources/list`, `resources/templates/list`, `prompts/list`): one
//! generic function decides candidates the same way a call would be stopped and decided, shows
//! only what the actor may use, and logs one summary record per request. Tools and prompts are
//! listed by name a page at a time, deciding only what the page reaches; resources (in the
//! downstreams' order) and templates are decided whole and paged by offset.

use rmcp::model::{Prompt, Resource, ResourceTemplate, Tool};

use crate::identity::CompositeActor;
use crate::policy::{Action, ActorFacts, PolicyRequest};

use super::capability::Target;
use super::listing::Listing;
use super::pinning::PinState;
use super::refusal::Refusal;
use super::requests::{prompt_request, resource_request, tool_request, Asker};
use super::{downstream_meta, Gateway, Judged};

/// One capability a discovery request may show.
struct Candidate<I> {
    /// How the summary record names it: the exposed name, or the URI (template).
    label: String,
    item: I,
    target: Target,
    request: Result<PolicyRequest, Refusal>,
}

/// One page of a discovery list: what it shows, and whether a later page shows more.
pub struct Page<I> {
    pub items: Vec<I>,
    pub more: bool,
}

/// What discovery makes of one candidate.
/// Its PDP answer is not counted in the metrics until a page's record names it.
enum Verdict {
    Shown(Judged),
    /// Left out before any decision (a kill switch, a request that cannot be built): the
    /// refusal's kind and detail.
    Undecided(&'static str, String),
    /// Not allowed by the PDP.
    Decided(Judged),
}

impl Gateway {
    /// Stops and decides one candidate as a call would be: killed → hidden; unbindable →
    /// hidden; allowed (or covered by break-glass) → shown; otherwise hidden with its decision.
    fn judge<I>(&self, actor: &CompositeActor, candidate: &Candidate<I>) -> Verdict {
        if let Err(refusal) = self.controls.stop(actor, &candidate.target) {
            return Verdict::Undecided(refusal.kind(), refusal.detailed());
        }
        let request = match &candidate.request {
            Ok(request) => request,
            Err(refusal) => return Verdict::Undecided(refusal.kind(), refusal.detailed()),
        };
        let judged = self.decide_uncounted(request);
        let granted = judged.decision.break_glass_may_override
            && self
                .controls
                .break_glass_for(actor, &candidate.target.name)
                .is_some();
        if judged.decision.is_allow() || granted {
            Verdict::Shown(judged)
        } else {
            Verdict::Decided(judged)
        }
    }

    /// Names a judged candidate in the page's record by its label (a resource's URI) and
    /// counts its decision's metrics under its capability (the contract's exposed name, as a
    /// call counts: never a URI, which may name a tenant's data).
    fn record(&self, listing: &mut Listing, label: &str, capability: &str, verdict: Verdict) {
        match verdict {
            Verdict::Shown(judged) => {
                self.count_pdp_answer(&judged, capability);
                listing.show(label, Some(&judged.decision));
            }
            Verdict::Undecided(kind, detail) => listing.hide_undecided(label, kind, detail),
            Verdict::Decided(judged) => {
                self.count_pdp_answer(&judged, capability);
                listing.hide_decided(label, &judged.decision);
            }
        }
    }

    /// Judges candidates in order until `limit` are shown, and logs one summary record naming
    /// each candidate judged for the page. Once the page is full it looks on for one more a
    /// later page would show: `more` says whether there is one, so that a client is never
    /// handed a cursor to a page that only hidden capabilities would fill. The hidden ones it
    /// passes are recorded by the next page, or by this one when there is no next page: every
    /// candidate is named in exactly one record of a full listing, and its decision counted
    /// once in the metrics.
    fn discover<I>(
        &self,
        actor: &CompositeActor,
        action: Action,
        method: &'static str,
        candidates: impl IntoIterator<Item = Candidate<I>>,
        limit: usize,
    ) -> Page<I> {
        let mut listing = Listing::new(action, method);
        let mut items = Vec::new();
        // Hidden candidates after a full page: the next page records them if there is one;
        // if there is none, this page does.
        let mut hidden_after = Vec::new();
        let mut more = false;
        for candidate in candidates {
            let verdict = self.judge(actor, &candidate);
            if items.len() == limit {
                if matches!(verdict, Verdict::Shown(_)) {
                    more = true;
                    break;
                }
                hidden_after.push((candidate.label, candidate.target.name, verdict));
                continue;
            }
            if matches!(verdict, Verdict::Shown(_)) {
                items.push(candidate.item);
            }
            self.record(
                &mut listing,
                &candidate.label,
                &candidate.target.name,
                verdict,
            );
        }
        if !more {
            // Only hidden candidates follow a full page here (a shown one ends the loop).
            for (label, capability, verdict) in hidden_after {
                self.record(&mut listing, &label, &capability, verdict);
            }
        }
        self.log.append(listing.into_record(actor, &self.policy));
        Page { items, more }
    }

    /// The tools this actor may use (contracted, offered by a live downstream, and allowed),
    /// sorted by name: up to `limit` of those named after `after`. Every contracted tool's
    /// name is compared with the cursor, but only the candidates this page reaches are cloned
    /// and decided.
    pub fn list_tools(
        &self,
        actor: &CompositeActor,
        after: Option<&str>,
        limit: usize,
    ) -> Page<Tool> {
        let facts = ActorFacts::from_actor(actor);
        let catalogues: Vec<_> = self
            .downstreams
            .iter()
            .map(|server| (server, server.catalogue()))
            .collect();
        let contracted = catalogues.iter().flat_map(|(server, catalogue)| {
            catalogue.tools.iter().filter_map(move |listed| {
                Some((
                    self.registry.tool_of(&server.id, &listed.tool.name)?,
                    listed,
                ))
            })
        });
        let offered = sorted_after(contracted, |contract| &contract.exposed_name, after);
        let candidates = offered.into_iter().map(|(contract, listed)| {
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
            Candidate {
                label: contract.exposed_name.clone(),
                item: tool,
                target: Target::of_tool(contract, listed.definition_hash.clone()),
                request,
            }
        });
        self.discover(actor, Action::DiscoverTool, "tools/list", candidates, limit)
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
            usize::MAX,
        )
        .items
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
            usize::MAX,
        )
        .items
    }

    /// The prompts this actor may use, sorted by name: up to `limit` of those named after
    /// `after`.
    pub fn list_prompts(
        &self,
        actor: &CompositeActor,
        after: Option<&str>,
        limit: usize,
    ) -> Page<Prompt> {
        let facts = ActorFacts::from_actor(actor);
        let catalogues: Vec<_> = self
            .downstreams
            .iter()
            .map(|server| (server, server.catalogue()))
            .collect();
        let contracted = catalogues.iter().flat_map(|(server, catalogue)| {
            catalogue.prompts.iter().filter_map(move |listed| {
                Some((self.registry.prompt_of(&server.id, &listed.name)?, listed))
            })
        });
        let offered = sorted_after(contracted, |contract| &contract.exposed_name, after);
        let candidates = offered.into_iter().map(|(contract, listed)| {
            let mut prompt = listed.clone();
            prompt.name = contract.exposed_name.clone();
            Candidate {
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
            }
        });
        self.discover(
            actor,
            Action::DiscoverPrompt,
            "prompts/list",
            candidates,
            limit,
        )
    }
}

/// The contracted entries whose exposed name sorts after `after`, sorted by that name: where a
/// page of a list listed by name starts. (Names are unique: the registry refuses two contracts
/// exposing one name, and a downstream's catalogue holds each name once, so no page boundary
/// falls between two entries of one name.)
fn sorted_after<'a, C, L>(
    contracted: impl Iterator<Item = (&'a C, &'a L)>,
    name: impl Fn(&C) -> &str,
    after: Option<&str>,
) -> Vec<(&'a C, &'a L)> {
    let mut offered: Vec<_> = contracted
        .filter(|(contract, _)| after.is_none_or(|after| name(contract) > after))
        .collect();
    offered.sort_by(|a, b| name(a.0).cmp(name(b.0)));
    offered
}

fn asker<'a>(actor: &'a CompositeActor, facts: &'a ActorFacts) -> Asker<'a> {
    Asker {
        facts,
        tenant: &actor.tenant,
        run_id: actor.run_id.as_deref(),
    }
}
