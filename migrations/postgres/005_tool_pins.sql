-- Version 5: tool-definition pins. Each contracted tool's definition digest (description,
-- input and output schema, annotations) as first seen or as an admin accepted it; a downstream
-- whose tool no longer matches its pin gets the tool quarantined. Every replica is told.

CREATE TABLE tool_pins (
    server TEXT NOT NULL,
    tool TEXT NOT NULL,
    digest TEXT NOT NULL,
    definition TEXT NOT NULL,
    pinned_by TEXT NOT NULL,
    pinned_at BIGINT NOT NULL,
    PRIMARY KEY (server, tool)
);

CREATE TRIGGER tool_pins_changed
    AFTER INSERT OR UPDATE OR DELETE ON tool_pins
    FOR EACH STATEMENT EXECUTE FUNCTION capgate_notify_change('tool_pins');
