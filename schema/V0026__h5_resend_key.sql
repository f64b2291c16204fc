-- The H5 app numbers its chat frames local-1, local-2, … from 1 again on every page load,
-- so a frame id alone does not identify a message: after a reload the first messages were
-- taken for resends of old ones and never stored. A user message now resends an earlier
-- one only when its id AND its content are the same and the earlier one is recent
-- (H5_RESEND_WINDOW_SECONDS), or its id is a UUID (docs/relay-protocol.md). `resend_key`
-- (frame id + digest of the content) is unique per session while set; an old message gives
-- its key up when a new message with the same key arrives.
ALTER TABLE h5_chat_messages DROP CONSTRAINT h5_chat_messages_session_id_role_client_message_id_key;
ALTER TABLE h5_chat_messages ADD COLUMN resend_key text;
CREATE UNIQUE INDEX h5_chat_messages_resend_idx ON h5_chat_messages (session_id, resend_key)
    WHERE resend_key IS NOT NULL;
-- A gateway's reply id stays a permanent key: a reply sent again is stored once.
CREATE UNIQUE INDEX h5_chat_messages_reply_idx ON h5_chat_messages (session_id, client_message_id)
    WHERE role = 'assistant';
