from django.urls import path

from . import views

urlpatterns = [
    path("functions/<str:name>/routes", views.routes, name="api-function-routes"),
    path("functions/<str:name>/routes/<str:route_id>", views.route_detail, name="api-function-route"),
]
