"""CORS for the one endpoint that browsers call: `POST /api/v1/events` (API.md, "Events").

A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered 204 at once,
for any origin: it carries no API key, so there is no project to ask. The POST itself is
refused (403, nothing stored) by the view when the key's project lists allowed origins and
the request's Origin is not one of them (`Project.allowed_origins`, set in the admin). Its
answers carry Access-Control-Allow-Origin for the request's Origin, so a page's script can
read them, the 403 and the 429 included. No other path answers CORS.
"""

from django.http import HttpResponse
from django.utils.cache import patch_vary_headers

PATHS = frozenset({"/api/v1/events"})
ALLOW_METHODS = "POST, OPTIONS"
ALLOW_HEADERS = "Content-Type, Content-Encoding, X-API-Key, Authorization"
EXPOSE_HEADERS = "Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
MAX_AGE_SECONDS = 86400  # how long a browser may reuse a preflight's answer


class EventsCorsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        origin = request.headers.get("Origin")
        if origin is None or request.path not in PATHS:
            return self.get_response(request)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response = HttpResponse(status=204)
            del response["Content-Type"]  # no body
            response["Access-Control-Allow-Methods"] = ALLOW_METHODS
            response["Access-Control-Allow-Headers"] = ALLOW_HEADERS
            response["Access-Control-Max-Age"] = str(MAX_AGE_SECONDS)
        else:
            response = self.get_response(request)
            response["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        response["Access-Control-Allow-Origin"] = origin
        patch_vary_headers(response, ["Origin"])
        return response
