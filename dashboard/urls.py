from django.urls import path

from dashboard import views

urlpatterns = [
    path("", views.HomePage.as_view(), name="home"),
    path("p/<slug:slug>/", views.OverviewPage.as_view(), name="overview"),
    path("p/<slug:slug>/trends", views.TrendsPage.as_view(), name="trends"),
    path("p/<slug:slug>/retention", views.RetentionPage.as_view(), name="retention"),
    path("p/<slug:slug>/users", views.UserSearchPage.as_view(), name="users"),
    path("p/<slug:slug>/settings", views.SettingsPage.as_view(), name="settings"),
    path("p/<slug:slug>/users/<path:user_id>", views.UserPage.as_view(), name="user"),
]
