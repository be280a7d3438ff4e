from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.response import Response

from accounts.models import ApiKey
from accounts.selectors import api_key_get
from accounts.serializers import ApiKeyCreatedSerializer, ApiKeyCreateSerializer, ApiKeySerializer, ProjectSerializer
from accounts.services import api_key_create, api_key_set_active
from analytics_platform.api import ProjectAPIView


class ProjectView(ProjectAPIView):
    """The project the API key belongs to."""

    required_scope = "read"
    serializer_class = ProjectSerializer

    def get(self, request):
        return Response(ProjectSerializer(self.project).data)


class ApiKeyListView(mixins.ListModelMixin, ProjectAPIView):
    required_scope = "admin"
    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer

    def get(self, request):
        return self.list(request)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def post(self, request):
        params = ApiKeyCreateSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        api_key, plaintext = api_key_create(
            project=self.project,
            name=data["name"],
            scopes=data["scopes"],
            rate_limit=data.get("rateLimit"),
            ingest_rate_limit=data.get("ingestRateLimit"),
            expires_at=data.get("expiresAt"),
        )
        return Response({**ApiKeySerializer(api_key).data, "key": plaintext}, status=201)


class ApiKeyDetailView(mixins.RetrieveModelMixin, ProjectAPIView):
    required_scope = "admin"
    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer

    def get_object(self):
        return api_key_get(project=self.project, key_id=self.kwargs["pk"])

    def get(self, request, pk):
        return self.retrieve(request)

    @extend_schema(responses={204: None})
    def delete(self, request, pk):
        """Revokes the key (it stays listed, inactive)."""
        api_key_set_active(api_key=self.get_object(), is_active=False)
        return Response(status=204)
