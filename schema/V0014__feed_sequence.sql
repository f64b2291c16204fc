-- Per-board feed order for the SSE streams: every board-scoped activity event and every
-- approval change takes the board's next number under the board row's lock, so numbers
-- follow commit order and a client resuming from the last number it saw misses nothing.
ALTER TABLE boards ADD COLUMN feed_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE activity_events ADD COLUMN seq bigint;
ALTER TABLE approvals ADD COLUMN feed_seq bigint NOT NULL DEFAULT 0;
CREATE INDEX activity_events_board_seq_idx ON activity_events (board_id, seq);
CREATE INDEX approvals_board_feed_seq_idx ON approvals (board_id, feed_seq);
