-- The headers of a request read inside an intercepted connection
-- (flow.Flow.Headers), secrets redacted.
ALTER TABLE flows ADD COLUMN headers TEXT NOT NULL DEFAULT '';
