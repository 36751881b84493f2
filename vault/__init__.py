"""Tenants' secrets: envelope-encrypted at rest, write-only over the API, bound to versions by name."""
