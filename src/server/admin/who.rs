//! Who may call each admin endpoint, in the words the OpenAPI document gives each operation
//! (`#[utoipa::path(description = ...)]` on the handlers). The admin policy set decides; these
//! texts say what it decides.

pub const ANY_ADMIN: &str =
    "Tenant admins ([admin] role) and platform admins ([admin] platform_role).";
pub const PLATFORM: &str = "Platform admins only.";
pub const SWITCHES: &str = "Tenant admins: tenant, user and agent_role switches limited to their own tenant. Platform admins: every switch, including global, server and tool switches and switches without a tenant.";
pub const TENANT_RECORDS: &str = "Tenant admins: the records of their own tenant. Platform admins: any tenant's, or every tenant's (`tenant=*`).";
pub const TENANT_RUNS: &str =
    "Tenant admins: runs of their own tenant. Platform admins: any tenant.";
pub const OWN_TENANT: &str =
    "Any person (no agent) for their own tenant; platform admins too stay within theirs.";
pub const APPROVER: &str =
    "A person of the approval's tenant with its approver role who is not its requester.";
pub const BREAK_GLASS: &str = "A person with the break-glass role, for their own tenant.";
