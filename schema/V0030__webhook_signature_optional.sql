-- Signatures become a per-webhook property (issue 29): a webhook created in the console,
-- which never reads the secret, must be callable unsigned, as in the reference. Webhooks
-- that exist already were created under "always signed" and keep requiring it.
ALTER TABLE board_webhooks ADD COLUMN require_signature boolean NOT NULL DEFAULT true;
ALTER TABLE board_webhooks ALTER COLUMN require_signature SET DEFAULT false;
