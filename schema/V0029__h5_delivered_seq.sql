-- The highest `user_seq` a socket of the user was handed: a client that reconnects without
-- saying what it saw (the shipped H5 app sends nothing) gets what came after it
-- (docs/relay-protocol.md, "No loss"). Existing users start with everything seen.
ALTER TABLE h5_users ADD COLUMN delivered_seq bigint NOT NULL DEFAULT 0;
UPDATE h5_users SET delivered_seq = message_seq;
