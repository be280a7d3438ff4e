from drf_spectacular.utils import extend_schema
from rest_framework import mixins

from analytics_platform.api import ProjectAPIView
from funnels.models import Funnel
from funnels.serializers import FunnelSerializer


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


class FunnelDetailView(mixins.RetrieveModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin, ProjectAPIView):
    required_scopes = {"GET": "read", "PUT": "admin", "PATCH": "admin", "DELETE": "admin"}
    queryset = Funnel.objects.all()
    serializer_class = FunnelSerializer

    def get(self, request, pk):
        return self.retrieve(request)

    def put(self, request, pk):
        return self.update(request)

    def patch(self, request, pk):
        return self.partial_update(request)

    @extend_schema(responses={204: None})
    def delete(self, request, pk):
        return self.destroy(request)
