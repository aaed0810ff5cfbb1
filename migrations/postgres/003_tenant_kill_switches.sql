-- Version 3: kill switches may be limited to one tenant (a tenant admin's always are). The
-- tenant is part of the key: the same scope may be on for one tenant and for every tenant.
-- Existing switches keep no tenant: they stop every tenant, as before.

ALTER TABLE kill_switches ADD COLUMN tenant TEXT;
ALTER TABLE kill_switches DROP CONSTRAINT kill_switches_pkey;
CREATE UNIQUE INDEX kill_switches_key ON kill_switches (kind, target, (COALESCE(tenant, '')), (tenant IS NULL));
