-- Agent tokens: a public lookup id (one indexed query per request) and an HMAC of the
-- secret part keyed with AGENT_TOKEN_KEY. Rotating replaces both.
ALTER TABLE agents ADD COLUMN token_lookup text UNIQUE;
ALTER TABLE agents ADD COLUMN token_hash bytea;
