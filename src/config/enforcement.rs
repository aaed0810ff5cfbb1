//! The `[enforcement]` table: run budgets, idempotency retention and leases, approvals and
//! break-glass limits.

/// What to do with calls whose token carries no run id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithoutRunId {
    /// Refuse them.
    Deny,
    /// Count them against a run per user and day.
    #[default]
    UserDay,
}

/// Budget, idempotency, approval and break-glass settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnforcementConfig {
    pub max_calls_per_run: u64,
    pub max_calls_per_tool: u64,
    pub max_cost_per_run: u64,
    pub without_run_id: WithoutRunId,
    pub idempotency_retention_seconds: i64,
    /// How long an in-flight idempotency claim holds its key. A gateway that dies mid-call
    /// leaves its claim behind; once the lease has passed, a retry performs the call. Must be
    /// longer than every downstream's call timeout, so a live call is never performed twice.
    pub idempotency_lease_seconds: i64,
    /// How long an approval request may be granted and used.
    pub approval_ttl_seconds: i64,
    /// The approver role when the deciding policy names none.
    pub default_approver_role: String,
    /// The role a person needs to open break-glass grants.
    pub break_glass_role: String,
    /// The longest a break-glass grant may last.
    pub break_glass_max_seconds: i64,
}

impl Default for EnforcementConfig {
    fn default() -> Self {
        Self {
            max_calls_per_run: 1_000,
            max_calls_per_tool: 500,
            max_cost_per_run: 5_000,
            without_run_id: WithoutRunId::UserDay,
            idempotency_retention_seconds: 24 * 3600,
            idempotency_lease_seconds: 300,
            approval_ttl_seconds: 3600,
            default_approver_role: "senior_reviewer".into(),
            break_glass_role: "break-glass".into(),
            break_glass_max_seconds: 4 * 3600,
        }
    }
}
