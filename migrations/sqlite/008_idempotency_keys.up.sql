-- An Idempotency-Key names one attempt of a client (an API client or a
-- portal user) at starting a run: the same key from the same actor within
-- its lifetime gives the run it started, not a new one. The key is written
-- in the transaction that starts the run, so the two commit together.
-- fingerprint is a hash of what was asked with the key (route and body): a
-- key sent again with another request is refused.
CREATE TABLE idempotency_keys (
    actor       text        NOT NULL,
    idem_key    text        NOT NULL,
    fingerprint text        NOT NULL,
    instance_id text        NOT NULL,
    created_at  datetime    NOT NULL,
    expires_at  datetime    NOT NULL,
    PRIMARY KEY (actor, idem_key)
);

-- Expired keys are deleted a few at a time as new ones are written.
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
