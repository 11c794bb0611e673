-- Proxy names (flow.Flow.Proxy): proxies sharing a store keep their
-- devices apart, so activity is kept per proxy too. SQLite cannot change a
-- primary key in place: the activity tables are made again with the proxy
-- in theirs (every row so far is of the unnamed proxy), and the triggers
-- of migration 0004 again with the proxy in every match.
ALTER TABLE flows ADD COLUMN proxy TEXT NOT NULL DEFAULT '';

DROP TRIGGER flows_activity_update;
DROP TRIGGER flows_activity_delete;
DROP TRIGGER segments_activity_update;
DROP TRIGGER segments_activity_delete;

CREATE TABLE activity_new (
	proxy     TEXT NOT NULL,
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
	device    TEXT NOT NULL,
	device_ns INTEGER,
	PRIMARY KEY (proxy, client, session, win)
) WITHOUT ROWID;
INSERT INTO activity_new SELECT '', * FROM activity;
DROP TABLE activity;
ALTER TABLE activity_new RENAME TO activity;

CREATE TABLE segment_activity_new (
	segment_id INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
	proxy      TEXT NOT NULL,
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
	PRIMARY KEY (segment_id, proxy, client, session, win)
) WITHOUT ROWID;
INSERT INTO segment_activity_new SELECT segment_id, '', client, session, win, first_ns, first_tz, last_ns, last_tz, flows, bytes, lost, device, device_ns FROM segment_activity;
DROP TABLE segment_activity;
ALTER TABLE segment_activity_new RENAME TO segment_activity;

CREATE TRIGGER segments_activity_update AFTER UPDATE OF data ON segments BEGIN
	DELETE FROM segment_activity WHERE segment_id = OLD.id;
END;
CREATE TRIGGER segments_activity_delete AFTER DELETE ON segments BEGIN
	DELETE FROM segment_activity WHERE segment_id = OLD.id;
END;

-- As in migration 0004, with the proxy.
CREATE TRIGGER flows_activity_update AFTER UPDATE ON flows BEGIN
	UPDATE activity SET
		flows = flows - (OLD.kind <> 'lost'),
		bytes = bytes - CASE WHEN OLD.kind = 'lost' THEN 0 ELSE OLD.bytes_up + OLD.bytes_down END,
		lost = lost - CASE WHEN OLD.kind = 'lost' THEN OLD.lost ELSE 0 END
	WHERE OLD.kind <> 'pac' AND proxy = OLD.proxy AND client = OLD.client AND session = OLD.session AND win = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000;
	INSERT INTO activity (proxy, client, session, win, first_ns, first_tz, last_ns, last_tz, flows, bytes, lost, device, device_ns)
	SELECT NEW.proxy, NEW.client, NEW.session, (NEW.start_ns - ((NEW.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000,
		NEW.start_ns, NEW.start_tz, max(NEW.start_ns, coalesce(NEW.end_ns, NEW.start_ns)), NEW.start_tz,
		NEW.kind <> 'lost', CASE WHEN NEW.kind = 'lost' THEN 0 ELSE NEW.bytes_up + NEW.bytes_down END,
		CASE WHEN NEW.kind = 'lost' THEN NEW.lost ELSE 0 END,
		NEW.device, CASE WHEN NEW.device <> '' THEN NEW.start_ns END
	WHERE NEW.kind <> 'pac'
	ON CONFLICT (proxy, client, session, win) DO UPDATE SET
		first_tz = CASE WHEN excluded.first_ns < first_ns THEN excluded.first_tz ELSE first_tz END,
		first_ns = min(first_ns, excluded.first_ns),
		last_tz = CASE WHEN excluded.last_ns > last_ns THEN excluded.last_tz ELSE last_tz END,
		last_ns = max(last_ns, excluded.last_ns),
		flows = flows + excluded.flows,
		bytes = bytes + excluded.bytes,
		lost = lost + excluded.lost,
		device = CASE WHEN excluded.device_ns >= coalesce(device_ns, excluded.device_ns) THEN excluded.device ELSE device END,
		device_ns = CASE WHEN excluded.device_ns >= coalesce(device_ns, excluded.device_ns) THEN excluded.device_ns ELSE device_ns END;
	DELETE FROM activity WHERE OLD.kind <> 'pac' AND proxy = OLD.proxy AND client = OLD.client AND session = OLD.session AND win = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000
		AND NOT EXISTS (SELECT 1 FROM flows WHERE kind <> 'pac' AND proxy = activity.proxy AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000);
	UPDATE activity SET
		(first_ns, first_tz) = (SELECT start_ns, start_tz FROM flows WHERE kind <> 'pac' AND proxy = activity.proxy AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY start_ns, id LIMIT 1),
		(last_ns, last_tz) = (SELECT max(start_ns, coalesce(end_ns, start_ns)) AS l, start_tz FROM flows WHERE kind <> 'pac' AND proxy = activity.proxy AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY l DESC LIMIT 1),
		device = coalesce((SELECT device FROM flows WHERE device <> '' AND kind <> 'pac' AND proxy = activity.proxy AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY start_ns DESC, id DESC LIMIT 1), ''),
		device_ns = (SELECT start_ns FROM flows WHERE device <> '' AND kind <> 'pac' AND proxy = activity.proxy AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY start_ns DESC, id DESC LIMIT 1)
	WHERE OLD.kind <> 'pac' AND proxy = OLD.proxy AND client = OLD.client AND session = OLD.session AND win = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000
		AND (first_ns = OLD.start_ns AND NOT (NEW.kind <> 'pac' AND NEW.proxy = OLD.proxy AND NEW.client = OLD.client AND NEW.session = OLD.session AND (NEW.start_ns - ((NEW.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 AND NEW.start_ns <= OLD.start_ns)
		OR last_ns = max(OLD.start_ns, coalesce(OLD.end_ns, OLD.start_ns)) AND NOT (NEW.kind <> 'pac' AND NEW.proxy = OLD.proxy AND NEW.client = OLD.client AND NEW.session = OLD.session AND (NEW.start_ns - ((NEW.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 AND max(NEW.start_ns, coalesce(NEW.end_ns, NEW.start_ns)) >= max(OLD.start_ns, coalesce(OLD.end_ns, OLD.start_ns)))
		OR OLD.device <> '' AND device_ns = OLD.start_ns AND NOT (NEW.kind <> 'pac' AND NEW.proxy = OLD.proxy AND NEW.client = OLD.client AND NEW.session = OLD.session AND (NEW.start_ns - ((NEW.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000 AND NEW.device = OLD.device AND NEW.start_ns = OLD.start_ns));
END;

CREATE TRIGGER flows_activity_delete AFTER DELETE ON flows BEGIN
	UPDATE activity SET
		flows = flows - (OLD.kind <> 'lost'),
		bytes = bytes - CASE WHEN OLD.kind = 'lost' THEN 0 ELSE OLD.bytes_up + OLD.bytes_down END,
		lost = lost - CASE WHEN OLD.kind = 'lost' THEN OLD.lost ELSE 0 END
	WHERE OLD.kind <> 'pac' AND proxy = OLD.proxy AND client = OLD.client AND session = OLD.session AND win = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000;
	DELETE FROM activity WHERE OLD.kind <> 'pac' AND proxy = OLD.proxy AND client = OLD.client AND session = OLD.session AND win = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000
		AND NOT EXISTS (SELECT 1 FROM flows WHERE kind <> 'pac' AND proxy = activity.proxy AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000);
	UPDATE activity SET
		(first_ns, first_tz) = (SELECT start_ns, start_tz FROM flows WHERE kind <> 'pac' AND proxy = activity.proxy AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY start_ns, id LIMIT 1),
		(last_ns, last_tz) = (SELECT max(start_ns, coalesce(end_ns, start_ns)) AS l, start_tz FROM flows WHERE kind <> 'pac' AND proxy = activity.proxy AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY l DESC LIMIT 1),
		device = coalesce((SELECT device FROM flows WHERE device <> '' AND kind <> 'pac' AND proxy = activity.proxy AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY start_ns DESC, id DESC LIMIT 1), ''),
		device_ns = (SELECT start_ns FROM flows WHERE device <> '' AND kind <> 'pac' AND proxy = activity.proxy AND client = activity.client AND session = activity.session
			AND start_ns >= activity.win * 60000000000 AND start_ns < (activity.win + 1) * 60000000000
			ORDER BY start_ns DESC, id DESC LIMIT 1)
	WHERE OLD.kind <> 'pac' AND proxy = OLD.proxy AND client = OLD.client AND session = OLD.session AND win = (OLD.start_ns - ((OLD.start_ns % 60000000000) + 60000000000) % 60000000000) / 60000000000
		AND (first_ns = OLD.start_ns OR last_ns = max(OLD.start_ns, coalesce(OLD.end_ns, OLD.start_ns)) OR OLD.device <> '' AND device_ns = OLD.start_ns);
END;
