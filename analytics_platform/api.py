"""The base every project-scoped API view uses.

Tenancy is decided here and only here: the API key authenticates the request, its project is
`self.project`, and `get_queryset()` is always filtered to it, so an object of another project
is simply not found (404, never 403). Views declare the scope they need.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from accounts.auth import supported_methods
from analytics_platform.queries import refuse_nul


class ListPagination(LimitOffsetPagination):
    """`?limit=&offset=` on the list endpoints, with a ceiling: an unbounded `limit` reaches
    the database as a LIMIT it cannot represent."""

    max_limit = 1000


class ProjectAPIView(generics.GenericAPIView):
    required_scope: str | None = None
    required_scopes: dict[str, str] | None = None
    pagination_class = ListPagination

    @property
    def project(self):
        return self.request.auth.project

    def get_queryset(self):
        return super().get_queryset().filter(project=self.project)

    @property
    def allowed_methods(self):
        """What a 405's `Allow` header lists: the methods HasScope lets through."""
        return supported_methods(self)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        state = getattr(request._request, "rate_limit", None)
        if state is not None:
            for header, value in state.headers().items():
                response[header] = value
        return response


class QueryAPIView(ProjectAPIView):
    """A read endpoint that answers with one query runner: the query string (plus any path
    parameters, under `path_params` names) goes to the runner, its result is the body."""

    required_scope = "read"
    runner = None
    path_params: dict[str, str] = {}

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, **kwargs):
        params = request.query_params.dict()
        params.update({self.path_params[name]: value for name, value in kwargs.items()})
        refuse_nul(params)
        return Response(self.runner(project=self.project, params=params).run())
