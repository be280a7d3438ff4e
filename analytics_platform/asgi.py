"""ASGI entry point: HTTP and WebSocket from one process.

HTTP goes to Django's WSGI handler on a thread pool (a2wsgi): the API's views are
synchronous, and one hand-off per request measured twice as fast here as Django's own ASGI
handler, which hops between the event loop and threads at every middleware. The one
exception is `POST /api/v1/events` with Redis configured: events.hot answers it on the event
loop, and hands Django what it does not answer. WebSockets are served by Channels on the
event loop.
"""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "analytics_platform.settings")

from a2wsgi import WSGIMiddleware  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

django_wsgi = get_wsgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from analytics_platform.routing import websocket_urlpatterns  # noqa: E402
from events import hot  # noqa: E402

django_http = WSGIMiddleware(django_wsgi, workers=settings.HTTP_THREADS)


async def http(scope, receive, send):
    if scope["path"] == hot.PATH and scope["method"] == "POST" and hot.enabled():
        return await hot.handle(scope, receive, send, django_http)
    return await django_http(scope, receive, send)


application = ProtocolTypeRouter({"http": http, "websocket": URLRouter(websocket_urlpatterns)})

# What is loaded by now lives as long as the process: frozen out of the collector's way, so a
# full collection no longer walks it. Unfrozen, one took 55-69 ms here (a stalled event loop:
# every request in flight waits), about once every 150 batches of 1,000 events.
gc.freeze()
