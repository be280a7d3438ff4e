from channels.auth import AuthMiddlewareStack
from django.urls import path

from events.live.consumers import EventStreamConsumer

websocket_urlpatterns = [
    # the session (Channels' cookie, session and auth middleware) for the dashboard's members;
    # the consumer decides whether it counts (events.live.consumers._authenticate)
    path("ws/events", AuthMiddlewareStack(EventStreamConsumer.as_asgi())),
]
