"""A small client for the Lambdasite API (standard library only)."""

from .lambdasite_client import ApiError, Client

__all__ = ["ApiError", "Client"]
