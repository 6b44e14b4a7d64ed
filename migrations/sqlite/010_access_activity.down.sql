DROP INDEX IF EXISTS api_tokens_client;
ALTER TABLE api_clients DROP COLUMN last_used_at;
ALTER TABLE users DROP COLUMN last_sign_in_at;
