-- Proxy names (flow.Flow.Proxy): proxies sharing this database keep their
-- devices apart. Activity is summed per proxy at read time (read.go).
ALTER TABLE flows ADD COLUMN proxy text NOT NULL DEFAULT '';
