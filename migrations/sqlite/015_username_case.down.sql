-- Usernames that differ only by case may coexist again. The rows 015
-- renamed keep their NAME:dup:ID names: nothing says which were renamed
-- by it rather than after it.
DROP INDEX identities_username_lower;
DROP INDEX users_username_lower;
