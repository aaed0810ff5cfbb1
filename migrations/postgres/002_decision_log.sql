-- capgate decision log on PostgreSQL, version 2: one hash chain per replica (chain = the
-- replica id). Each replica appends only to its own chain, holding a session advisory lock on
-- it while it writes, so no two processes ever extend one chain. Records and checkpoints are
-- exactly those of the SQLite log, keyed by (chain, seq).

CREATE TABLE decision_chains (
    chain TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE decisions (
    chain TEXT NOT NULL REFERENCES decision_chains (chain),
    seq BIGINT NOT NULL,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);

CREATE TABLE decision_checkpoints (
    chain TEXT NOT NULL REFERENCES decision_chains (chain),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
