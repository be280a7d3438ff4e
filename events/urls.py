from django.urls import path

from events import api

urlpatterns = [
    path("events", api.EventIngestView.as_view(), name="events"),
    path("events/summary", api.EventSummaryView.as_view(), name="events-summary"),
]
