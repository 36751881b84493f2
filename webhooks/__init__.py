"""Signed webhooks: endpoints, an outbox of events written with the transitions that cause them, and
deliveries retried for about a day (see ARCHITECTURE.md)."""
