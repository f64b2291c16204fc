-- One board's counter taken and committed (what every write to that board waits for)
BEGIN;
INSERT INTO board_seqs AS s (board_id, feed_seq, sync_seq) VALUES (:board, 1, 1) ON CONFLICT (board_id) DO UPDATE SET feed_seq = s.feed_seq + 1, sync_seq = s.sync_seq + 1;
COMMIT;
