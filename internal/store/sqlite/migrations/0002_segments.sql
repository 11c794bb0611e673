-- Imported files are stored as segments: one row per part of a file (see
-- segment.go), not one per flow.
CREATE TABLE segments (
	id        INTEGER PRIMARY KEY,
	file      TEXT NOT NULL,
	part      INTEGER NOT NULL,
	first_id  INTEGER NOT NULL, -- the flows' IDs are first_id .. first_id+n-1
	n         INTEGER NOT NULL,
	start_min INTEGER NOT NULL,
	start_max INTEGER NOT NULL,
	source    TEXT NOT NULL,    -- the source of all its flows, or '' when mixed
	data      BLOB NOT NULL,
	UNIQUE (file, part)
);
CREATE INDEX segments_start ON segments (start_min);

-- Flow IDs come from one counter, shared by rows and segments, so that a
-- flow written later always has a greater ID than every flow before it.
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counters (name, value) SELECT 'next_flow_id', COALESCE(MAX(id), 0) + 1 FROM flows;
