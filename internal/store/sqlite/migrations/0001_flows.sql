CREATE TABLE flows (
	id          INTEGER PRIMARY KEY,
	key         TEXT NOT NULL UNIQUE,
	start_ns    INTEGER NOT NULL,
	start_tz    INTEGER NOT NULL DEFAULT 0,
	end_ns      INTEGER,
	client      TEXT NOT NULL DEFAULT '',
	client_port INTEGER NOT NULL DEFAULT 0,
	device      TEXT NOT NULL DEFAULT '',
	session     TEXT NOT NULL DEFAULT '',
	source      TEXT NOT NULL DEFAULT '',
	source_file TEXT NOT NULL DEFAULT '',
	kind        TEXT NOT NULL DEFAULT '',
	method      TEXT NOT NULL DEFAULT '',
	scheme      TEXT NOT NULL DEFAULT '',
	host        TEXT NOT NULL DEFAULT '',
	port        INTEGER NOT NULL DEFAULT 0,
	url         TEXT NOT NULL DEFAULT '',
	status      INTEGER NOT NULL DEFAULT 0,
	bytes_up    INTEGER NOT NULL DEFAULT 0,
	bytes_down  INTEGER NOT NULL DEFAULT 0,
	sni         TEXT NOT NULL DEFAULT '',
	alpn        TEXT NOT NULL DEFAULT '',
	tls_version TEXT NOT NULL DEFAULT '',
	error       TEXT NOT NULL DEFAULT '',
	decision    TEXT NOT NULL DEFAULT '',
	reason      TEXT NOT NULL DEFAULT '',
	note        TEXT NOT NULL DEFAULT ''
);
-- Every read is in start order, so start_ns is the one secondary index.
-- Indexes on client and host were dropped: a filter on client also matches
-- device (an OR no single index serves), and each index on a column whose
-- values repeat across the file (500 hosts) made every batch of an import
-- touch hundreds more pages, halving its speed; a host filter scans the
-- flows in start order instead.
CREATE INDEX flows_start ON flows (start_ns, id);
