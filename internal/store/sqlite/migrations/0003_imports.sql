-- The imports of files that have begun and not ended: a row is written
-- with a file's first part and deleted by EndFileFlows, so a row that
-- stays is an import killed or cancelled half way (or one running now).
-- Its flows so far are in segments, and they carry source_file.
CREATE TABLE imports (
	file        TEXT PRIMARY KEY, -- the file's identity (flow.Store.PutFileFlows)
	source_file TEXT NOT NULL,    -- the SourceFile its flows carry
	flows       INTEGER NOT NULL, -- flows written by the import so far
	started_ns  INTEGER NOT NULL  -- when its first part was written
);
