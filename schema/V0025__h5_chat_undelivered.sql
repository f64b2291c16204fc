-- User messages stored while their agent's gateway had no live link anywhere: the
-- gateway's relay link sends them (oldest first) when it comes up, and forgets them then.
CREATE TABLE h5_chat_undelivered (
    message_id uuid PRIMARY KEY REFERENCES h5_chat_messages (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
