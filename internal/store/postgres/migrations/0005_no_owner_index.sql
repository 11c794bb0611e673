-- flows_owner (client, session, proxy, start_ns) served only the summing
-- again of a window whose rows changed other than by completing (rare:
-- a tunnel completing is a delta, see activity.go), and cost every insert
-- a four-column entry. Without it that sum walks the window's minute on
-- flows_start and filters. In one run of bench_test.go: live batches 52k
-- → 67k flows/s, import parts 64k → 135k.
DROP INDEX flows_owner;
