"""The base every project-scoped API view uses.

Tenancy is decided here and only here: the API key authenticates the request, its project is
`self.project`, and `get_queryset()` is always filtered to it, so an object of another project
is simply not found (404, never 403). Views declare the scope they need.
"""

from rest_framework import generics


class ProjectAPIView(generics.GenericAPIView):
    required_scope: str | None = None
    required_scopes: dict[str, str] | None = None

    @property
    def project(self):
        return self.request.auth.project

    def get_queryset(self):
        return super().get_queryset().filter(project=self.project)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        state = getattr(request._request, "rate_limit", None)
        if state is not None:
            for header, value in state.headers().items():
                response[header] = value
        return response
