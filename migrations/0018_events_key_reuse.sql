-- A (guid, seqnumber) repeated with another body is another event
-- (r_keeper does not promise a driver run's guid is unique): the key is no
-- longer unique. The writer looks up a resent key's earlier events
-- received within `[log] dedupe_window_days` and compares their bodies;
-- `first_offset` marks an event that reused such a key (NULL otherwise),
-- and the partial index lists those without touching the others.
ALTER TABLE events ADD COLUMN first_offset BIGINT;
DROP INDEX {log}events_stream_seq;
CREATE INDEX {log}events_stream_seq_any ON events (stream_guid, seqnumber);
CREATE INDEX {log}events_key_reused ON events (log_offset) WHERE first_offset IS NOT NULL
