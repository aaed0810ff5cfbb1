//! Agent memory: entries by scope and key; user-scoped entries belong to their user alone.

use serde_json::json;

use super::error::{require_text, DomainError, DomainResult};
use super::model::{Actor, MemoryEntry, MemoryScope, MemorySensitivity};
use super::platform::Platform;

impl Platform {
    fn memory_key(
        actor: &Actor,
        scope: MemoryScope,
        key: &str,
    ) -> (MemoryScope, Option<String>, String) {
        let owner = match scope {
            MemoryScope::User => actor.user.clone(),
            _ => None,
        };
        (scope, owner, key.to_owned())
    }

    /// `write_memory`: stores (or overwrites) an entry.
    pub fn write_memory(
        &mut self,
        actor: &Actor,
        scope: MemoryScope,
        key: &str,
        value: &str,
        sensitivity: MemorySensitivity,
    ) -> DomainResult {
        require_text("key", key)?;
        let map_key = Self::memory_key(actor, scope, key);
        let entry = MemoryEntry {
            scope,
            key: key.to_owned(),
            owner: map_key.1.clone(),
            value: value.to_owned(),
            sensitivity,
            written_by: actor.user.clone(),
            agent: actor.agent.clone(),
        };
        let replaced = self
            .tenant_mut(&actor.tenant)
            .memory
            .insert(map_key, entry.clone())
            .is_some();
        Ok(json!({ "stored": true, "replaced": replaced, "entry": entry }))
    }

    /// `read_memory`: the stored entry, or not found.
    pub fn read_memory(&self, actor: &Actor, scope: MemoryScope, key: &str) -> DomainResult {
        let map_key = Self::memory_key(actor, scope, key);
        let entry = self
            .tenant(&actor.tenant)
            .memory
            .get(&map_key)
            .ok_or_else(|| DomainError::NotFound {
                kind: "memory",
                id: format!("{}/{key}", scope.as_str()),
            })?;
        Ok(json!({ "found": true, "value": entry.value, "entry": entry }))
    }
}
