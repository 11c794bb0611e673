-- One row per flow, live or imported. Live rows (PutFlows) are found by
-- their key; an imported file's flows (PutFileFlows) by file and part, and
-- their keys are kept but never matched.
CREATE TABLE flows (
	id          bigint PRIMARY KEY,
	key         text NOT NULL,
	file        text,             -- the imported file's identity; NULL for live rows
	part        integer,          -- the part of that file
	start_ns    bigint NOT NULL,
	start_tz    integer NOT NULL DEFAULT 0,
	end_ns      bigint,
	client      text NOT NULL DEFAULT '',
	client_port integer NOT NULL DEFAULT 0,
	device      text NOT NULL DEFAULT '',
	session     text NOT NULL DEFAULT '',
	source      text NOT NULL DEFAULT '',
	source_file text NOT NULL DEFAULT '',
	kind        text NOT NULL DEFAULT '',
	method      text NOT NULL DEFAULT '',
	scheme      text NOT NULL DEFAULT '',
	host        text NOT NULL DEFAULT '',
	port        integer NOT NULL DEFAULT 0,
	url         text NOT NULL DEFAULT '',
	status      integer NOT NULL DEFAULT 0,
	bytes_up    bigint NOT NULL DEFAULT 0,
	bytes_down  bigint NOT NULL DEFAULT 0,
	sni         text NOT NULL DEFAULT '',
	alpn        text NOT NULL DEFAULT '',
	tls_version text NOT NULL DEFAULT '',
	error       text NOT NULL DEFAULT '',
	decision    text NOT NULL DEFAULT '',
	reason      text NOT NULL DEFAULT '',
	note        text NOT NULL DEFAULT '',
	lost        bigint NOT NULL DEFAULT 0,
	tunnel      text NOT NULL DEFAULT '',
	headers     text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX flows_key ON flows (key) WHERE file IS NULL;
-- Every read is in start order.
CREATE INDEX flows_start ON flows (start_ns, id);
CREATE INDEX flows_file ON flows (file, part) WHERE file IS NOT NULL;
-- Sessions are found per client (Store.Activity with a client).
CREATE INDEX flows_client ON flows (client, start_ns);
-- The live page's "problems only" (see package sqlite's migration 0005).
CREATE INDEX flows_problems ON flows (start_ns, id)
	WHERE decision = 'denied' OR error <> '' OR status >= 400 AND status <> 401 OR bytes_down < 64;

-- Flow IDs come from one counter. Every write locks its row first, so
-- writers take turns and a flow committed later has a greater ID than
-- every flow committed before it: a reader that follows by ID (the live
-- page) misses none.
CREATE TABLE counters (name text PRIMARY KEY, value bigint NOT NULL);
INSERT INTO counters (name, value) VALUES ('next_flow_id', 1);

-- Imports begun and not ended (flow.Store.UnfinishedImports).
CREATE TABLE imports (
	file        text PRIMARY KEY,
	source_file text NOT NULL,
	flows       bigint NOT NULL,
	started_ns  bigint NOT NULL
);

-- TLS interception's learned pass-through list (flow.PassThroughStore).
CREATE TABLE pass_through (
	host       text PRIMARY KEY,
	reason     text NOT NULL,
	learned_ns bigint NOT NULL,
	learned_tz integer NOT NULL DEFAULT 0,
	client     text NOT NULL DEFAULT '',
	flow_key   text NOT NULL DEFAULT ''
);
