"""Deployed functions: versions with dependencies, aliases, builds and warm cells (see ARCHITECTURE.md)."""
