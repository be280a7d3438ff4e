"""Authentication by API key (`X-API-Key` or `Authorization: Bearer`) and scope checks.

`request.auth` is the ApiKey; its project is the tenant of everything the request touches
(see analytics_platform.api.ProjectAPIView).
"""

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from accounts.selectors import api_key_get_by_plaintext
from accounts.services import api_key_touch


def key_from_headers(headers) -> str | None:
    key = headers.get("X-API-Key")
    if key:
        return key.strip()
    scheme, _, credentials = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        plaintext = key_from_headers(request.headers)
        if plaintext is None:
            return None
        api_key = api_key_get_by_plaintext(plaintext=plaintext)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if not api_key.is_active:
            raise exceptions.AuthenticationFailed("This API key has been revoked.")
        if api_key.is_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        api_key_touch(api_key=api_key)
        request._request.project_id = api_key.project_id  # for the access log line
        return (None, api_key)

    def authenticate_header(self, request):
        return 'ApiKey realm="api", header="X-API-Key"'


class HasScope(permissions.BasePermission):
    """Requires a valid key carrying the view's `required_scope`.
    A view may declare `required_scopes = {"GET": "read", "POST": "admin"}` per method."""

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request, view):
        if request.auth is None:
            raise exceptions.NotAuthenticated("An API key is required (X-API-Key header).")
        scope = required_scope(view, request.method)
        if scope is None:
            raise ImproperlyConfigured(f"{type(view).__name__} declares no required scope for {request.method}.")
        if not request.auth.has_scope(scope):
            self.message = f"This API key lacks the '{scope}' scope."
            return False
        return True


def required_scope(view, method: str) -> str | None:
    per_method = getattr(view, "required_scopes", None) or {}
    if method in per_method:
        return per_method[method]
    if method == "HEAD" and "GET" in per_method:
        return per_method["GET"]
    return getattr(view, "required_scope", None)


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}
