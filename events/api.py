from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.response import Response

from analytics_platform.api import ProjectAPIView
from analytics_platform.dates import parse_range
from analytics_platform.errors import error_body
from events.payload import client_ip, read_json_body
from events.queries import event_summary
from events.serializers import (
    DateRangeParamsSerializer,
    EventInSerializer,
    EventSummarySerializer,
    IngestResultSerializer,
)
from events.services import events_ingest


class EventIngestView(ProjectAPIView):
    required_scope = "ingest"
    parser_classes: list = []  # events.payload reads the body (gzip, 5 MB limit)

    @extend_schema(
        request=EventInSerializer(many=True),
        responses={
            202: IngestResultSerializer,
            400: OpenApiResponse(IngestResultSerializer, description="Every event was rejected, or bad body."),
            413: OpenApiResponse(description="Body over 5 MB or more than EVENT_BATCH_SIZE events."),
            415: OpenApiResponse(description="Not JSON."),
            503: OpenApiResponse(description="Neither Redis nor the database can take events."),
        },
        examples=[OpenApiExample("One event", value={"userId": "user123", "eventName": "page_view"})],
        description="One event object, or an array of up to EVENT_BATCH_SIZE events. `Content-Encoding: gzip` ok.",
    )
    def post(self, request):
        result = events_ingest(
            project=self.project,
            payload=read_json_body(request),
            client_ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:2048],
        )
        if result.accepted or result.duplicates:
            return Response(result.as_body(), status=202)
        body = error_body("all_events_rejected", "Every event was rejected; see rejected.", None)
        return Response({**result.as_body(), **body}, status=400)


class EventSummaryView(ProjectAPIView):
    required_scope = "read"

    @extend_schema(parameters=[DateRangeParamsSerializer], responses=EventSummarySerializer)
    def get(self, request):
        start, end = parse_range(
            request.query_params.get("startDate"), request.query_params.get("endDate"), self.project.tzinfo
        )
        return Response(event_summary(project=self.project, start=start, end=end))
