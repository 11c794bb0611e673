-- The kept bodies of a request read inside an intercepted connection
-- (flow.Flow.Bodies, proxy --bodies): compressed, NULL when none.
ALTER TABLE flows ADD COLUMN bodies BLOB;
