-- The dashboard metrics count a board's tasks by when they were last updated.
CREATE INDEX tasks_board_updated_idx ON tasks (board_id, updated_at);
