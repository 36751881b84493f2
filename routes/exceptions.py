"""Errors of routes (see lambdasite/exceptions.py for the base): the management API's, and the
refusals a public request to a route gets."""

from __future__ import annotations

from lambdasite.exceptions import (
    ApplicationError,
    Conflict,
    Forbidden,
    LimitReached,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
)


class RouteNotFound(NotFound):
    code = "route_not_found"


class RouteExists(Conflict):
    """Another route of the tenant has the same path shape (``/a/{x}`` and ``/a/{y}``)."""

    code = "route_exists"


class RouteLimit(LimitReached):
    """ROUTES_MAX_PER_TENANT: deleting a route lifts it, not time."""


class NotReplayable(Conflict):
    """Only a job made by a route (its request stored as its argument) can be replayed."""

    code = "not_replayable"


# a public request's refusals: none of them creates a job or takes a token


class NoRoute(NotFound):
    """No route answers this path (an unknown tenant, a deleted route: the same answer)."""

    default_message = "no route here"


class MethodNotAllowed(ApplicationError):
    status = 405
    code = "method_not_allowed"


class Unauthenticated(ApplicationError):
    status = 401
    code = "unauthenticated"


class SignatureInvalid(Unauthenticated):
    code = "invalid_signature"


class SignatureExpired(Unauthenticated):
    code = "signature_expired"


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"


class BodyTooLarge(PayloadTooLarge):
    pass


class RouteUnavailable(ServiceUnavailable):
    """The route cannot serve now for a reason of its own configuration (its secret is gone, its
    function's version failed to build or is disabled): said to the caller without the details,
    which are logged for the tenant."""

    code = "route_unavailable"
    default_message = "this route cannot serve requests now"
