from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from analytics_platform.api import ProjectAPIView, QueryAPIView
from analytics_platform.errors import error_body
from events.payload import client_ip, read_body
from events.queries import JourneyQuery, MetricsQuery, SummaryQuery
from events.serializers import (
    EventsInSerializer,
    EventSummarySerializer,
    IngestErrorSerializer,
    IngestResultSerializer,
)
from events.services import events_ingest


class EventIngestView(ProjectAPIView):
    required_scope = "ingest"
    key_in_query = True  # ?apiKey= too: a page's sendBeacon cannot set headers
    parser_classes: list = []  # events.payload reads the body (gzip, 5 MB limit)

    @extend_schema(
        request={"application/json": EventsInSerializer, "text/plain": EventsInSerializer},  # no parser to derive it
        parameters=[
            OpenApiParameter(
                "apiKey",
                str,
                OpenApiParameter.QUERY,
                description="The key, for a browser's sendBeacon (which cannot set headers); else X-API-Key.",
            )
        ],
        responses={
            202: IngestResultSerializer,
            400: OpenApiResponse(IngestErrorSerializer, description="Every event was rejected, or a bad body."),
            403: OpenApiResponse(description="A browser's Origin that the project's allowed origins do not list."),
            413: OpenApiResponse(description="Body over 5 MB or more than EVENT_BATCH_SIZE events."),
            415: OpenApiResponse(description="Not JSON."),
            503: OpenApiResponse(description="Neither Redis nor the database can take events."),
        },
        examples=[OpenApiExample("One event", value={"userId": "user123", "eventName": "page_view"})],
        description="One event object, an array of up to EVENT_BATCH_SIZE events, or {batch, sentAt}. "
        "`Content-Encoding: gzip` ok; text/plain holding JSON too (sendBeacon).",
    )
    def post(self, request):
        origin = request.headers.get("Origin")
        if origin is not None and not self.project.origin_allowed(origin):
            raise PermissionDenied(f"This project does not take events from {origin[:200]} (its allowed origins).")
        result = events_ingest(
            project=self.project,
            body=read_body(request),
            client_ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:2048],
        )
        if result.accepted or result.duplicates:
            return Response(result.as_body(), status=202)
        body = error_body("all_events_rejected", "Every event was rejected; see rejected.", None)
        return Response({**result.as_body(), **body}, status=400)


def date_parameters(*extra: OpenApiParameter) -> list[OpenApiParameter]:
    return [
        OpenApiParameter(
            "startDate", str, description="YYYY-MM-DD (project timezone) or ISO-8601; default 30 days ago"
        ),
        OpenApiParameter("endDate", str, description="Inclusive. YYYY-MM-DD or ISO-8601; default today"),
        *extra,
    ]


@extend_schema_view(get=extend_schema(parameters=date_parameters(), responses=EventSummarySerializer))
class EventSummaryView(QueryAPIView):
    runner = SummaryQuery


@extend_schema_view(
    get=extend_schema(
        parameters=date_parameters(
            OpenApiParameter("event", str, description="Only this event name (default: all events)"),
            OpenApiParameter(
                "interval", str, enum=["hour", "day", "week", "month", "hourly", "daily", "weekly", "monthly"]
            ),
        )
    )
)
class MetricsView(QueryAPIView):
    runner = MetricsQuery


@extend_schema_view(
    get=extend_schema(
        parameters=date_parameters(
            OpenApiParameter("limit", int, description="1 to 1000 (more is clamped), default 100"),
            OpenApiParameter("cursor", str, description="nextCursor of the previous page"),
        )
    )
)
class JourneyView(QueryAPIView):
    runner = JourneyQuery
    path_params = {"user_id": "userId"}
