"""The logistics plugin's domain logic, one module per concern; no GraphQL here."""
