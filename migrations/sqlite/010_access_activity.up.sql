-- When a portal user last signed in and when an API client last used a
-- token, for the admin page that lists them (and to find clients nobody
-- uses any more). Past sign-ins are read from the audit trail.
ALTER TABLE users ADD COLUMN last_sign_in_at datetime;
ALTER TABLE api_clients ADD COLUMN last_used_at datetime;

UPDATE users SET last_sign_in_at = (SELECT max(e.at) FROM audit_events e
    WHERE e.action = 'user.sign_in' AND e.target_id = users.id);

-- Revoking a client deletes its tokens.
CREATE INDEX api_tokens_client ON api_tokens (client_id);
