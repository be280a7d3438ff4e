from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.exceptions import NotFound

from analytics_platform.health import HealthView

handler400 = "analytics_platform.errors.handler400"
handler403 = "analytics_platform.errors.handler403"
handler404 = "analytics_platform.errors.handler404"
handler500 = "analytics_platform.errors.handler500"


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@authentication_classes([])
@permission_classes([])
@throttle_classes([])
def api_not_found(request, *args, **kwargs):
    """Unknown paths under /api/ answer in the error shape, whatever DEBUG is."""
    raise NotFound("No API endpoint at this path.")


api_v1 = [
    path("", include("accounts.urls")),
    path("", include("events.urls")),
    path("", include("retention.urls")),
    path("", include("funnels.urls")),
]

urlpatterns = [
    path("health", HealthView.as_view(), name="health"),
    # Asked for by browsers on pages that name no icon (the admin, the API docs).
    path("favicon.ico", RedirectView.as_view(url=static("dashboard/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api-docs", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include(api_v1)),
    re_path(r"^api/", api_not_found),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("dashboard.urls")),
]
