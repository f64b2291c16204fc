-- Every H5 message is pending until its gateway has taken it (at-least-once; before, only
-- messages no live link took were kept, and a message handed to a link that died, or
-- published to an instance that was gone, was lost though the user had an ack).
--
-- A row is written with its message and lives until the gateway took the message (a relay
-- link's `chat.ack`) or answered it (an OpenClaw run's final event); `accepted_at` says the
-- gateway took it and only its answer is awaited. A sender of the gateway (its relay link,
-- or the client of a gateway we dial, on any instance) sends again what is due, and
-- everything not yet taken whenever it (re)connects.
ALTER TABLE h5_chat_undelivered RENAME TO h5_chat_pending;
ALTER TABLE h5_chat_pending RENAME CONSTRAINT h5_chat_undelivered_pkey TO h5_chat_pending_pkey;
ALTER TABLE h5_chat_pending RENAME CONSTRAINT h5_chat_undelivered_message_id_fkey TO h5_chat_pending_message_id_fkey;
ALTER TABLE h5_chat_pending ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE h5_chat_pending ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE h5_chat_pending ADD COLUMN accepted_at timestamptz;
CREATE INDEX h5_chat_pending_due_idx ON h5_chat_pending (next_attempt_at) WHERE accepted_at IS NULL;
