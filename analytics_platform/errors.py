"""The one error shape: `{"error": {"code", "message", "details"}}`.

Domain code raises the small set of exceptions below; DRF's own exceptions, Django's 404 and
anything else that reaches a view all go through `exception_handler`, and the plain Django
handlers (`handler404`, ...) answer in the same shape for paths DRF never sees.
"""

import structlog
from django import db
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response

logger = structlog.get_logger(__name__)


class DomainError(Exception):
    status_code = 400
    code = "invalid_input"

    def __init__(self, message: str, *, details: dict | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code


class InvalidInput(DomainError):
    status_code = 400
    code = "invalid_input"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "payload_too_large"


class ServiceUnavailable(DomainError):
    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 5, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


# DRF's exception classes → our codes; anything unlisted keeps DRF's own snake_case code.
DRF_CODES = {
    exceptions.ValidationError: "invalid_input",
    exceptions.ParseError: "malformed_body",
    exceptions.AuthenticationFailed: "unauthorized",
    exceptions.NotAuthenticated: "unauthorized",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
}


def error_body(code: str, message: str, details=None) -> dict:
    return {"error": {"code": code, "message": _printable(message), "details": _printable(details)}}


def _printable(value):
    """`value` with every string encodable as UTF-8: an error that echoes what the client
    sent (a field name, an invalid choice) may carry a lone surrogate, which no response
    body can (it would fail as it is encoded, a 500); it is shown escaped instead."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_printable(key): _printable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(item) for item in value]
    return value


def _message_and_details(exc: exceptions.APIException) -> tuple[str, object]:
    detail = exc.detail
    if isinstance(detail, (dict, list)):
        return "The request is invalid; see details.", detail
    return str(detail), None


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        response = Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
        if isinstance(exc, ServiceUnavailable):
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, db.OperationalError | db.InterfaceError):
        logger.error("database_unavailable", error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return exception_handler(ServiceUnavailable("The database is unavailable; retry shortly."), context)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    from rest_framework.views import exception_handler as drf_exception_handler  # DRF settings import us

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug, not client input: let Django log it and answer 500
    code = next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)), exc.default_code)
    message, details = _message_and_details(exc)
    response.data = error_body(code, message, details)
    return response


def _django_handler(status: int, code: str, message: str):
    def handler(request, exception=None):
        return JsonResponse(error_body(code, message), status=status)

    return handler


handler400 = _django_handler(400, "bad_request", "The request could not be understood.")
handler403 = _django_handler(403, "forbidden", "You do not have permission to do this.")
handler404 = _django_handler(404, "not_found", "Nothing is here.")
handler500 = _django_handler(500, "internal_error", "Something went wrong on our side; it has been logged.")
