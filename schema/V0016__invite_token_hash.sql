-- Invite tokens are bearer secrets: keep only their SHA-256 (hex), like every other token.
-- The raw token is answered once, when the invite is created.
ALTER TABLE organization_invites RENAME COLUMN token TO token_hash;
UPDATE organization_invites SET token_hash = encode(sha256(convert_to(token_hash, 'UTF8')), 'hex');
