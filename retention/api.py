from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view

from analytics_platform.api import QueryAPIView
from events.api import date_parameters
from retention.queries import RetentionQuery


@extend_schema_view(
    get=extend_schema(
        parameters=date_parameters(
            OpenApiParameter("cohort", str, description="Event that puts a user in a cohort (default: any event)"),
            OpenApiParameter("returnEvent", str, description="Event that counts as a return (default: any event)"),
            OpenApiParameter("period", str, enum=["day", "week", "month"], description="default day"),
            OpenApiParameter("periods", int, description="Periods after period 0 (default 7)"),
            OpenApiParameter("days", int, description="Alias: period=day&periods=N"),
            OpenApiParameter("type", str, enum=["first_time", "recurring"], description="default first_time"),
            OpenApiParameter("cumulative", bool, description="Count a user up to their last return"),
        )
    )
)
class RetentionView(QueryAPIView):
    runner = RetentionQuery
