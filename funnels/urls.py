from django.urls import path

from funnels import api

urlpatterns = [
    path("funnels", api.FunnelListView.as_view(), name="funnel-list"),
    path("funnels/<id:pk>", api.FunnelDetailView.as_view(), name="funnel-detail"),
    path("funnels/<id:pk>/analytics", api.FunnelAnalyticsView.as_view(), name="funnel-analytics"),
    path("funnels/<id:pk>/analytics/users", api.FunnelUsersView.as_view(), name="funnel-users"),
]
