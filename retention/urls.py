from django.urls import path

from retention import api

urlpatterns = [path("retention", api.RetentionView.as_view(), name="retention")]
