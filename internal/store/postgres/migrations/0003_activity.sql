-- Activity (flow.Store.Activity) kept as flows are written, instead of
-- summed from every flow at each read: listing the sessions of a
-- million-flow store took 2.6 s. Each write adds its new rows' activity,
-- and sums again from their rows the windows that rows left or changed in
-- (activity.go). A window is floor(start_ns / 60 s).
CREATE TABLE activity (
	proxy     text NOT NULL,
	client    text NOT NULL,
	session   text NOT NULL,
	win       bigint NOT NULL,
	first_ns  bigint NOT NULL,
	first_tz  integer NOT NULL,
	last_ns   bigint NOT NULL,
	last_tz   integer NOT NULL,
	flows     bigint NOT NULL,
	bytes     bigint NOT NULL,
	lost      bigint NOT NULL,
	device    text NOT NULL,
	device_ns bigint,         -- start of the flow that gave device; NULL when none had one
	PRIMARY KEY (proxy, client, session, win)
);
CREATE INDEX activity_win ON activity (win);
-- Windows are summed again by proxy, client, session and start.
CREATE INDEX flows_owner ON flows (client, session, proxy, start_ns);

INSERT INTO activity (proxy, client, session, win, first_ns, first_tz, last_ns, last_tz, flows, bytes, lost, device, device_ns)
SELECT proxy, client, session, win,
	min(start_ns), (array_agg(start_tz ORDER BY start_ns, id))[1],
	max(l), (array_agg(start_tz ORDER BY l DESC, start_ns, id))[1],
	count(*) FILTER (WHERE kind <> 'lost'),
	coalesce(sum(bytes_up + bytes_down) FILTER (WHERE kind <> 'lost'), 0)::bigint,
	coalesce(sum(lost) FILTER (WHERE kind = 'lost'), 0)::bigint,
	coalesce((array_agg(device ORDER BY start_ns DESC, id DESC) FILTER (WHERE device <> ''))[1], ''),
	max(start_ns) FILTER (WHERE device <> '')
FROM (SELECT *, (start_ns - ((start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 AS win,
	greatest(start_ns, coalesce(end_ns, start_ns)) AS l FROM flows WHERE kind <> 'pac') x
GROUP BY proxy, client, session, win;
