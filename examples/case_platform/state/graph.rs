//! The tenant's entity graph: a breadth-first walk along outgoing edges, bounded in depth.

use std::collections::{BTreeSet, VecDeque};

use serde_json::json;

use super::error::{DomainError, DomainResult};
use super::model::Actor;
use super::platform::Platform;

/// Deepest entity-graph traversal the platform performs; deeper requests are clamped.
pub const MAX_GRAPH_DEPTH: u32 = 3;

impl Platform {
    /// `traverse_entity_graph`: breadth-first walk along outgoing edges, up to `depth`
    /// (clamped to [`MAX_GRAPH_DEPTH`]).
    pub fn traverse_entity_graph(
        &self,
        actor: &Actor,
        entity_id: &str,
        depth: u32,
    ) -> DomainResult {
        let state = self.tenant(&actor.tenant);
        let start = state
            .entities
            .get(entity_id)
            .ok_or_else(|| DomainError::not_found("entity", entity_id))?;
        let depth_applied = depth.min(MAX_GRAPH_DEPTH);
        let mut visited = BTreeSet::from([start.id.clone()]);
        let mut queue = VecDeque::from([(start.id.clone(), 0u32)]);
        let mut nodes =
            vec![json!({ "id": start.id, "kind": start.kind, "label": start.label, "depth": 0 })];
        let mut edges = Vec::new();
        while let Some((id, d)) = queue.pop_front() {
            if d >= depth_applied {
                continue;
            }
            for edge in state.edges.iter().filter(|e| e.from == id) {
                edges.push(edge.clone());
                if visited.insert(edge.to.clone()) {
                    let (kind, label) = state
                        .entities
                        .get(&edge.to)
                        .map(|e| (e.kind.clone(), e.label.clone()))
                        .unwrap_or_else(|| ("unknown".to_owned(), edge.to.clone()));
                    nodes.push(
                        json!({ "id": edge.to, "kind": kind, "label": label, "depth": d + 1 }),
                    );
                    queue.push_back((edge.to.clone(), d + 1));
                }
            }
        }
        Ok(json!({
            "start": entity_id,
            "depth_requested": depth,
            "depth_applied": depth_applied,
            "clamped": depth > MAX_GRAPH_DEPTH,
            "nodes": nodes,
            "edges": edges,
        }))
    }
}
