from django.urls import path

from funnels import api

# Any path segment is a funnel id here, not only well-formed ones: funnels.selectors.funnel_get
# answers "Funnel not found." alike for a malformed, unknown or another project's id.
urlpatterns = [
    path("funnels", api.FunnelListView.as_view(), name="funnel-list"),
    path("funnels/<str:pk>", api.FunnelDetailView.as_view(), name="funnel-detail"),
    path("funnels/<str:pk>/analytics", api.FunnelAnalyticsView.as_view(), name="funnel-analytics"),
    path("funnels/<str:pk>/analytics/users", api.FunnelUsersView.as_view(), name="funnel-users"),
]
