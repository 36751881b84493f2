from django.urls import path

from . import views

urlpatterns = [
    path("functions", views.functions, name="api-functions"),
    path("functions/<str:name>", views.function_detail, name="api-function-detail"),
    path("functions/<str:name>/versions", views.versions, name="api-function-versions"),
    path("functions/<str:name>/versions/<str:number>", views.version_detail, name="api-function-version"),
    path(
        "functions/<str:name>/versions/<str:number>/build-logs",
        views.build_logs,
        name="api-function-build-logs",
    ),
    path("functions/<str:name>/aliases", views.alias_list, name="api-function-aliases"),
    path("functions/<str:name>/aliases/<str:alias>", views.alias_detail, name="api-function-alias"),
    path("functions/<str:name>/invoke", views.invoke, name="api-function-invoke"),
    path("functions/<str:name>/warm", views.warm_view, name="api-function-warm"),
]
