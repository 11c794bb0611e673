-- TLS interception (package intercept): a request read inside an
-- intercepted connection names its tunnel's flow (flow.Flow.Tunnel), and
-- the hosts whose clients refused the minted certificate are kept, so a
-- restarted proxy tunnels them untouched (flow.PassThrough). No index on
-- tunnel: nothing reads by it yet, and every index slows the writes.
ALTER TABLE flows ADD COLUMN tunnel TEXT NOT NULL DEFAULT '';
CREATE TABLE pass_through (
	host       TEXT PRIMARY KEY,
	reason     TEXT NOT NULL,
	learned_ns INTEGER NOT NULL,
	learned_tz INTEGER NOT NULL DEFAULT 0,
	client     TEXT NOT NULL DEFAULT '',
	flow_key   TEXT NOT NULL DEFAULT ''
);
