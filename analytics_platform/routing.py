from django.urls import path

from events.live.consumers import EventStreamConsumer

websocket_urlpatterns = [
    path("ws/events", EventStreamConsumer.as_asgi()),
]
