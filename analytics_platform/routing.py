# WebSocket routes; the live event stream joins here.
websocket_urlpatterns: list = []
