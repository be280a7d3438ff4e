from django.urls import path

from dashboard import funnels, live, views

urlpatterns = [
    path("", views.HomePage.as_view(), name="home"),
    path("p/<slug:slug>/", views.OverviewPage.as_view(), name="overview"),
    path("p/<slug:slug>/live", live.LivePage.as_view(), name="live"),
    path("p/<slug:slug>/trends", views.TrendsPage.as_view(), name="trends"),
    path("p/<slug:slug>/funnels", funnels.FunnelListPage.as_view(), name="funnels"),
    # any segment is a funnel id here, as in the API: funnel_get answers a 404 for a malformed one
    path("p/<slug:slug>/funnels/<str:funnel_id>", funnels.FunnelPage.as_view(), name="funnel"),
    path("p/<slug:slug>/funnels/<str:funnel_id>/edit", funnels.FunnelEditPage.as_view(), name="funnel-edit"),
    path("p/<slug:slug>/retention", views.RetentionPage.as_view(), name="retention"),
    path("p/<slug:slug>/users", views.UserSearchPage.as_view(), name="users"),
    path("p/<slug:slug>/settings", views.SettingsPage.as_view(), name="settings"),
    path("p/<slug:slug>/users/<path:user_id>", views.UserPage.as_view(), name="user"),
]
