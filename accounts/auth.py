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
    """The key from the headers; on a view with `key_in_query` (ingestion, for a browser's
    `sendBeacon`, which cannot set headers) also from `?apiKey=`. The query string is never
    logged (analytics_platform.logging)."""

    def authenticate(self, request):
        plaintext = key_from_headers(request.headers)
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if plaintext is None and getattr(view, "key_in_query", False):
            plaintext = (request.query_params.get("apiKey") or "").strip() or None
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
    A view may declare `required_scopes = {"GET": "read", "POST": "admin"}` per method.

    A method the view has no handler for is a 405 here, before the key is even looked at:
    what a view cannot do does not depend on who asks, and a scope is only looked up for a
    method that exists (a missing one is then a bug in the view, not in the request)."""

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request, view):
        if request.method not in supported_methods(view):
            raise exceptions.MethodNotAllowed(request.method)
        if request.auth is None:
            raise exceptions.NotAuthenticated("An API key is required (X-API-Key header).")
        scope = required_scope(view, request.method)
        if scope is None:
            raise ImproperlyConfigured(f"{type(view).__name__} declares no required scope for {request.method}.")
        if not request.auth.has_scope(scope):
            self.message = f"This API key lacks the '{scope}' scope."
            return False
        return True


def supported_methods(view) -> list[str]:
    """The methods `view` answers: those it has a handler for, HEAD wherever GET is (Django
    binds `head` to `get`). DRF's built-in OPTIONS (a metadata description) is not one: it
    is a 405 like any other method, unless the view defines its own `options`."""
    from rest_framework.views import APIView  # DRF's settings import this module

    methods = []
    for name in view.http_method_names:
        handler = getattr(view, name, None)
        if handler is None:
            continue
        if name == "options" and getattr(type(view), "options", None) is APIView.options:
            continue
        methods.append(name.upper())
    if "GET" in methods and "HEAD" not in methods:
        methods.append("HEAD")
    return methods


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
