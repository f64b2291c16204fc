-- Per-user message order that matches commit order. The global `seq` is assigned at insert
-- time, so two messages of one user inserted at once (their own from one device, a reply
-- from a gateway) can commit in the other order, and a client resuming "after" the later
-- one would miss the earlier. `user_seq` is taken from the user's row under its lock in the
-- same statement as the insert, so a user's messages commit in user_seq order.
ALTER TABLE h5_users ADD COLUMN message_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE h5_chat_messages ADD COLUMN user_seq bigint;
UPDATE h5_chat_messages m SET user_seq = m.seq;
UPDATE h5_users u SET message_seq = COALESCE((SELECT max(seq) FROM h5_chat_messages WHERE h5_user_id = u.id), 0);
ALTER TABLE h5_chat_messages ALTER COLUMN user_seq SET NOT NULL;
CREATE UNIQUE INDEX h5_chat_messages_user_order_idx ON h5_chat_messages (h5_user_id, user_seq);
-- Resume and history now follow user_seq.
DROP INDEX h5_chat_messages_user_seq_idx;
DROP INDEX h5_chat_messages_session_seq_idx;
CREATE INDEX h5_chat_messages_session_order_idx ON h5_chat_messages (session_id, user_seq DESC);
