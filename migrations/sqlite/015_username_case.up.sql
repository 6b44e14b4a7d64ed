-- Usernames are unique without regard to case, for portal users and for
-- identities alike: "ALICE" is "alice". Where rows that differ only by case
-- exist already, the oldest keeps its name (for identities, the oldest that
-- is not deleted) and each other one is renamed to NAME:dup:ID (with its
-- id), a form no username can take (usernames have no colon), so it is set
-- aside where anyone can see it: a renamed user is disabled and signed out,
-- a renamed identity made inactive, for an admin to merge or delete.

UPDATE users SET username = username || ':dup:' || CAST(id AS text), disabled = 1
WHERE EXISTS (SELECT 1 FROM users o WHERE lower(o.username) = lower(users.username)
              AND (o.created_at < users.created_at OR (o.created_at = users.created_at AND o.id < users.id)));
DELETE FROM web_sessions WHERE user_id IN (SELECT id FROM users WHERE username LIKE '%:dup:%');
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

-- An identity that is not deleted keeps its name before a deleted one.
UPDATE identities SET username = username || ':dup:' || CAST(id AS text),
    status = CASE WHEN status = 'deleted' THEN status ELSE 'inactive' END
WHERE EXISTS (SELECT 1 FROM identities o WHERE lower(o.username) = lower(identities.username) AND o.id <> identities.id
              AND ((o.status <> 'deleted' AND identities.status = 'deleted')
                   OR ((o.status = 'deleted') = (identities.status = 'deleted')
                       AND (o.created_at < identities.created_at OR (o.created_at = identities.created_at AND o.id < identities.id)))));
CREATE UNIQUE INDEX identities_username_lower ON identities (lower(username));
