-- Imported files are stored as segments: one row per part of a file (see
-- package segment, the format SQLite's store uses too), not one per flow:
-- COPY of a row a flow capped an import near 120,000 flows/s. Parts that
-- an earlier pilotwire imported as rows stay rows until imported again.
CREATE TABLE segments (
	id        bigserial PRIMARY KEY,
	file      text NOT NULL,
	part      integer NOT NULL,
	first_id  bigint NOT NULL,  -- the flows' IDs are first_id .. first_id+n-1
	n         integer NOT NULL,
	start_min bigint NOT NULL,
	start_max bigint NOT NULL,
	source    text NOT NULL,    -- the source of all its flows, or '' when mixed
	data      bytea NOT NULL,
	UNIQUE (file, part)
);
-- The blob is compact already; compressing it again costs more than it saves.
ALTER TABLE segments ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE INDEX segments_start ON segments (start_min);

-- The activity of each segment's flows, written with it, gone with it.
CREATE TABLE segment_activity (
	segment_id bigint NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
	proxy      text NOT NULL,
	client     text NOT NULL,
	session    text NOT NULL,
	win        bigint NOT NULL,
	first_ns   bigint NOT NULL,
	first_tz   integer NOT NULL,
	last_ns    bigint NOT NULL,
	last_tz    integer NOT NULL,
	flows      bigint NOT NULL,
	bytes      bigint NOT NULL,
	lost       bigint NOT NULL,
	device     text NOT NULL,
	device_ns  bigint
);
CREATE INDEX segment_activity_segment ON segment_activity (segment_id);
CREATE INDEX segment_activity_win ON segment_activity (win);
