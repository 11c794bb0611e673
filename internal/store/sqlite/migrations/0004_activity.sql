-- Activity: what each client (under each explicit session name) did in
-- each minute (flow.ActivityWindow), kept as flows are written, so that
-- sessions are found without reading every flow (flow.Store.Activity).
-- A window is floor(start_ns / 60 s). PAC flows are the proxy's own and
-- count nowhere; KindLost flows count their lost column, not as flows.

-- The flows a Recorder had to drop, on a KindLost record (flow.Flow.Lost).
ALTER TABLE flows ADD COLUMN lost INTEGER NOT NULL DEFAULT 0;

-- The activity of live rows, kept by the triggers below.
CREATE TABLE activity (
	client    TEXT NOT NULL,
	session   TEXT NOT NULL,
	win       INTEGER NOT NULL,
	first_ns  INTEGER NOT NULL,
	first_tz  INTEGER NOT NULL,
	last_ns   INTEGER NOT NULL,
	last_tz   INTEGER NOT NULL,
	flows     INTEGER NOT NULL,
	bytes     INTEGER NOT NULL,
	lost      INTEGER NOT NULL,
	device    TEXT NOT NULL,    -- label of the newest flow that has one
	device_ns INTEGER,          -- that flow's start; NULL when none has
	PRIMARY KEY (client, session, win)
) WITHOUT ROWID;

-- The activity of each segment (an imported part), written with it.
CREATE TABLE segment_activity (
	segment_id INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
	client     TEXT NOT NULL,
	session    TEXT NOT NULL,
	win        INTEGER NOT NULL,
	first_ns   INTEGER NOT NULL,
	first_tz   INTEGER NOT NULL,
	last_ns    INTEGER NOT NULL,
	last_tz    INTEGER NOT NULL,
	flows      INTEGER NOT NULL,
	bytes      INTEGER NOT NULL,
	lost       INTEGER NOT NULL,
	device     TEXT NOT NULL,
	device_ns  INTEGER,
	PRIMARY KEY (segment_id, client, session, win)
) WITHOUT ROWID;

-- A segment replaced in place keeps its id: its activity goes with the old
-- data, and the writer inserts the new. A deleted segment takes its own.
CREATE TRIGGER segments_activity_update AFTER UPDATE OF data ON segments BEGIN
	DELETE FROM segment_activity WHERE segment_id = OLD.id;
END;
CREATE TRIGGER segments_activity_delete AFTER DELETE ON segments BEGIN
	DELETE FROM segment_activity WHERE segment_id = OLD.id;
END;

-- A new row adds itself to its window: the writer sums a batch's new rows
-- up in Go and adds each window once (activityAdd in activity.go, the same
-- upsert as below), which costs far less than a trigger per row.

-- A row that changes (an open tunnel completed, or its bytes so far) or
-- goes takes itself out of its window: counts are subtracted, and when it
-- was what set the window's first or last moment or its label, those are
-- read again from the window's rows (an empty window goes). An update then
-- adds the new row as the writer adds an inserted one. Completing a tunnel only moves its
-- end later, so the common case reads no rows.
CREATE TRIGGER flows_activity_update AFTER UPDATE ON flows BEGIN
	UPDATE activity SET
		flows = flows - (OLD.kind <> 'lost'),
		bytes = bytes - CASE WHEN OLD.kind = 'lost' THEN 0 ELSE OLD.bytes_up + OLD.bytes_down END,
		lost = lost - CASE WHEN OLD.kind = 'lost' THEN OLD.lost ELSE 0 END
	WHERE OLD.kind <> 'pac' AND client = OLD.client AND session = OLD.session AND win = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000;
	INSERT INTO activity (client, session, win, first_ns, first_tz, last_ns, last_tz, flows, bytes, lost, device, device_ns)
	SELECT NEW.client, NEW.session, (NEW.start_ns - ((NEW.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000,
		NEW.start_ns, NEW.start_tz, max(NEW.start_ns, coalesce(NEW.end_ns, NEW.start_ns)), NEW.start_tz,
		NEW.kind <> 'lost', CASE WHEN NEW.kind = 'lost' THEN 0 ELSE NEW.bytes_up + NEW.bytes_down END,
		CASE WHEN NEW.kind = 'lost' THEN NEW.lost ELSE 0 END,
		NEW.device, CASE WHEN NEW.device <> '' THEN NEW.start_ns END
	WHERE NEW.kind <> 'pac'
	ON CONFLICT (client, session, win) DO UPDATE SET
		first_tz = CASE WHEN excluded.first_ns < first_ns THEN excluded.first_tz ELSE first_tz END,
		first_ns = min(first_ns, excluded.first_ns),
		last_tz = CASE WHEN excluded.last_ns > last_ns THEN excluded.last_tz ELSE last_tz END,
		last_ns = max(last_ns, excluded.last_ns),
		flows = flows + excluded.flows,
		bytes = bytes + excluded.bytes,
		lost = lost + excluded.lost,
		device = CASE WHEN excluded.device_ns >= coalesce(device_ns, excluded.device_ns) THEN excluded.device ELSE device END,
		device_ns = CASE WHEN excluded.device_ns >= coalesce(device_ns, excluded.device_ns) THEN excluded.device_ns ELSE device_ns END;
	DELETE FROM activity WHERE OLD.kind <> 'pac' AND client = OLD.client AND session = OLD.session AND win = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000
		AND NOT EXISTS (SELECT 1 FROM flows WHERE kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000);
	UPDATE activity SET
		(first_ns, first_tz) = (SELECT start_ns, start_tz FROM flows WHERE kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY start_ns, id LIMIT 1),
		(last_ns, last_tz) = (SELECT max(start_ns, coalesce(end_ns, start_ns)) AS l, start_tz FROM flows WHERE kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY l DESC LIMIT 1),
		device = coalesce((SELECT device FROM flows WHERE device <> '' AND kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY start_ns DESC, id DESC LIMIT 1), ''),
		device_ns = (SELECT start_ns FROM flows WHERE device <> '' AND kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY start_ns DESC, id DESC LIMIT 1)
	WHERE OLD.kind <> 'pac' AND client = OLD.client AND session = OLD.session AND win = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000
		AND (first_ns = OLD.start_ns AND NOT (NEW.kind <> 'pac' AND NEW.client = OLD.client AND NEW.session = OLD.session AND (NEW.start_ns - ((NEW.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 AND NEW.start_ns <= OLD.start_ns)
		OR last_ns = max(OLD.start_ns, coalesce(OLD.end_ns, OLD.start_ns)) AND NOT (NEW.kind <> 'pac' AND NEW.client = OLD.client AND NEW.session = OLD.session AND (NEW.start_ns - ((NEW.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 AND max(NEW.start_ns, coalesce(NEW.end_ns, NEW.start_ns)) >= max(OLD.start_ns, coalesce(OLD.end_ns, OLD.start_ns)))
		OR OLD.device <> '' AND device_ns = OLD.start_ns AND NOT (NEW.kind <> 'pac' AND NEW.client = OLD.client AND NEW.session = OLD.session AND (NEW.start_ns - ((NEW.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 AND NEW.device = OLD.device AND NEW.start_ns = OLD.start_ns));
END;

CREATE TRIGGER flows_activity_delete AFTER DELETE ON flows BEGIN
	UPDATE activity SET
		flows = flows - (OLD.kind <> 'lost'),
		bytes = bytes - CASE WHEN OLD.kind = 'lost' THEN 0 ELSE OLD.bytes_up + OLD.bytes_down END,
		lost = lost - CASE WHEN OLD.kind = 'lost' THEN OLD.lost ELSE 0 END
	WHERE OLD.kind <> 'pac' AND client = OLD.client AND session = OLD.session AND win = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000;
	DELETE FROM activity WHERE OLD.kind <> 'pac' AND client = OLD.client AND session = OLD.session AND win = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000
		AND NOT EXISTS (SELECT 1 FROM flows WHERE kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000);
	UPDATE activity SET
		(first_ns, first_tz) = (SELECT start_ns, start_tz FROM flows WHERE kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY start_ns, id LIMIT 1),
		(last_ns, last_tz) = (SELECT max(start_ns, coalesce(end_ns, start_ns)) AS l, start_tz FROM flows WHERE kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY l DESC LIMIT 1),
		device = coalesce((SELECT device FROM flows WHERE device <> '' AND kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY start_ns DESC, id DESC LIMIT 1), ''),
		device_ns = (SELECT start_ns FROM flows WHERE device <> '' AND kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY start_ns DESC, id DESC LIMIT 1)
	WHERE OLD.kind <> 'pac' AND client = OLD.client AND session = OLD.session AND win = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000
		AND (first_ns = OLD.start_ns OR last_ns = max(OLD.start_ns, coalesce(OLD.end_ns, OLD.start_ns)) OR OLD.device <> '' AND device_ns = OLD.start_ns);
END;

-- The activity of the rows already stored.
INSERT INTO activity (client, session, win, first_ns, first_tz, last_ns, last_tz, flows, bytes, lost, device, device_ns)
SELECT client, session, win, 0, 0, 0, 0,
	sum(kind <> 'lost'), sum(CASE WHEN kind = 'lost' THEN 0 ELSE bytes_up + bytes_down END),
	sum(CASE WHEN kind = 'lost' THEN lost ELSE 0 END), '', NULL
FROM (SELECT *, (start_ns - ((start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 AS win FROM flows WHERE kind <> 'pac')
GROUP BY client, session, win;
UPDATE activity SET
	(first_ns, first_tz) = (SELECT start_ns, start_tz FROM flows WHERE kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
		ORDER BY start_ns, id LIMIT 1),
	(last_ns, last_tz) = (SELECT max(start_ns, coalesce(end_ns, start_ns)) AS l, start_tz FROM flows WHERE kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
		ORDER BY l DESC LIMIT 1),
	device = coalesce((SELECT device FROM flows WHERE device <> '' AND kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
		ORDER BY start_ns DESC, id DESC LIMIT 1), ''),
	device_ns = (SELECT start_ns FROM flows WHERE device <> '' AND kind <> 'pac' AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
		ORDER BY start_ns DESC, id DESC LIMIT 1);
-- (The activity of segments already stored is computed from their data by
-- the Go side of this migration: see backfillSegmentActivity.)
