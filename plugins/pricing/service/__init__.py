"""The pricing plugin's domain logic: plain async functions over a session; no GraphQL here."""
