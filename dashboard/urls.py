from django.urls import path

from dashboard import views

urlpatterns = [
    path("", views.HomePage.as_view(), name="home"),
    path("p/<slug:slug>/", views.OverviewPage.as_view(), name="overview"),
]
