from django.urls import path

from accounts import api

urlpatterns = [
    path("project", api.ProjectView.as_view(), name="project"),
    path("keys", api.ApiKeyListView.as_view(), name="api-key-list"),
    path("keys/<str:pk>", api.ApiKeyDetailView.as_view(), name="api-key-detail"),
]
