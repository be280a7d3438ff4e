from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins

from analytics_platform.api import ProjectAPIView, QueryAPIView
from events.api import date_parameters
from funnels.models import Funnel
from funnels.queries import FunnelQuery, FunnelUsersQuery
from funnels.selectors import funnel_get
from funnels.serializers import FunnelSerializer

FUNNEL_ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="The funnel's id")


class FunnelListView(mixins.ListModelMixin, mixins.CreateModelMixin, ProjectAPIView):
    required_scopes = {"GET": "read", "POST": "admin"}
    queryset = Funnel.objects.all()
    serializer_class = FunnelSerializer

    def get(self, request):
        return self.list(request)

    def post(self, request):
        return self.create(request)

    def perform_create(self, serializer):
        serializer.save(project=self.project)


@extend_schema_view(
    get=extend_schema(parameters=[FUNNEL_ID]),
    put=extend_schema(parameters=[FUNNEL_ID]),
    patch=extend_schema(parameters=[FUNNEL_ID]),
    delete=extend_schema(parameters=[FUNNEL_ID]),
)
class FunnelDetailView(mixins.RetrieveModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin, ProjectAPIView):
    required_scopes = {"GET": "read", "PUT": "admin", "PATCH": "admin", "DELETE": "admin"}
    queryset = Funnel.objects.all()
    serializer_class = FunnelSerializer

    def get_object(self):
        return funnel_get(project=self.project, funnel_id=self.kwargs["pk"])

    def get(self, request, pk):
        return self.retrieve(request)

    def put(self, request, pk):
        return self.update(request)

    def patch(self, request, pk):
        return self.partial_update(request)

    @extend_schema(responses={204: None})
    def delete(self, request, pk):
        return self.destroy(request)


@extend_schema_view(
    get=extend_schema(
        parameters=date_parameters(
            FUNNEL_ID,
            OpenApiParameter("breakdown", str, description="Split by this property of the user's step-1 event"),
        )
    )
)
class FunnelAnalyticsView(QueryAPIView):
    runner = FunnelQuery
    path_params = {"pk": "funnelId"}


@extend_schema_view(
    get=extend_schema(
        parameters=date_parameters(
            FUNNEL_ID,
            OpenApiParameter("step", int, required=True, description="1-based step number"),
            OpenApiParameter("status", str, enum=["converted", "dropped"], description="default converted"),
            OpenApiParameter("limit", int, description="1 to 1000 (more is clamped), default 100"),
            OpenApiParameter("cursor", str, description="nextCursor of the previous page"),
        )
    )
)
class FunnelUsersView(QueryAPIView):
    runner = FunnelUsersQuery
    path_params = {"pk": "funnelId"}
