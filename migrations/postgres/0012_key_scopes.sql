-- What an API key may do: `submit` (create and control runs), `shell` (plans with shell
-- tasks or command gates), `admin` (the operator's views across projects). Keys made before
-- scopes existed keep working with `submit`.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'submit';
