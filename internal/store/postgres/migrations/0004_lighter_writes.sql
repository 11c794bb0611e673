-- Every index costs every write: a proxy writes each tunnel twice (open,
-- then completed), and a completion could be a HOT update (no index
-- touched, the new row version on the same page) only if no indexed
-- column, predicates included, changes and the page has room.
-- flows_client is covered by flows_owner's leading column; the problems
-- index's predicate named bytes_down, which a completion changes (the
-- "problems only" read walks the start index and filters instead); and
-- pages keep a fifth free for the completed versions.
DROP INDEX flows_client;
DROP INDEX flows_problems;
ALTER TABLE flows SET (fillfactor = 80);
