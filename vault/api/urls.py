from django.urls import path

from . import views

urlpatterns = [
    path("secrets", views.secrets, name="api-secrets"),
    path("secrets/<str:secret_name>", views.secret_detail, name="api-secret-detail"),
]
