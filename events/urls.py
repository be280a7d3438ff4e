from django.urls import path

from events import api

urlpatterns = [
    path("events", api.EventIngestView.as_view(), name="events"),
    path("events/summary", api.EventSummaryView.as_view(), name="events-summary"),
    path("metrics", api.MetricsView.as_view(), name="metrics"),
    path("users/<path:user_id>/journey", api.JourneyView.as_view(), name="journey"),
]
