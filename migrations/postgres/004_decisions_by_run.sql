-- Version 4: a run's records, over every replica's chain, are found by an index on the run id
-- in the record (run manifests, GET /admin/runs), not by reading every chain.

CREATE INDEX decisions_by_run ON decisions (((record::jsonb) ->> 'run_id'));
