"""OpenAPI description of API-key authentication (for drf-spectacular)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "lsk_<id>_<secret>",
            "description": "An API key of the tenant: `Authorization: Bearer lsk_…` (or the `X-API-Key` "
            "header).",
        }
