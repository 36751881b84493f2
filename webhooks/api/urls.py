from django.urls import path

from . import views

urlpatterns = [
    path("webhooks", views.webhooks, name="api-webhooks"),
    path("webhooks/callback-secret", views.callback_secret, name="api-webhooks-callback-secret"),
    path("webhooks/<str:endpoint_id>", views.webhook_detail, name="api-webhook-detail"),
    path("webhooks/<str:endpoint_id>/rotate-secret", views.webhook_rotate, name="api-webhook-rotate"),
    path("webhooks/<str:endpoint_id>/deliveries", views.webhook_deliveries, name="api-webhook-deliveries"),
    path("webhooks/<str:endpoint_id>/test", views.webhook_test, name="api-webhook-test"),
    path(
        "webhooks/<str:endpoint_id>/deliveries/<str:delivery_id>/redeliver",
        views.webhook_redeliver,
        name="api-webhook-redeliver",
    ),
]
