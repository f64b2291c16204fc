-- Board sync: every committed task change of a board, numbered 1, 2, 3… per board in
-- commit order (the number is taken under the board row's lock). BoardRooms read what is
-- new after their cursor and fan it out; a client that sees a gap asks for a fresh state.
-- Only the recent tail is kept: a client further behind gets a fresh board.state anyway.
ALTER TABLE boards ADD COLUMN sync_seq bigint NOT NULL DEFAULT 0;
CREATE TABLE board_sync_events (
    board_id    uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (board_id, seq)
);
