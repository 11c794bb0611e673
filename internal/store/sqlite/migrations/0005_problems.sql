-- The live page's "problems only" filter (flow.Filter.Problems) over a
-- busy store: the rows whose outcome may be a refusal or a failure, in
-- start order. A partial index: it holds only those rows (a percent or
-- two of a healthy run), so it costs inserts little, and the planner uses
-- it because the read's WHERE names the same expression (read.go: where).
CREATE INDEX flows_problems ON flows (start_ns, id)
	WHERE decision = 'denied' OR error <> '' OR status >= 400 AND status <> 401 OR bytes_down < 64;
