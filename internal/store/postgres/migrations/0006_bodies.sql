-- The kept bodies of a request read inside an intercepted connection
-- (flow.Flow.Bodies, proxy --bodies): compressed, NULL when none. Stored
-- as they come (EXTERNAL: already compressed, not worth compressing again).
ALTER TABLE flows ADD COLUMN bodies bytea;
ALTER TABLE flows ALTER COLUMN bodies SET STORAGE EXTERNAL;
