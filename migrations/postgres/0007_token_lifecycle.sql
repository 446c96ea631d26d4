-- Tokens expire (expires_at, NULL for never) and can be revoked
-- (revoked_at): either way they are refused from then on.
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE tokens ADD COLUMN revoked_at BIGINT;
