"""The tenant switcher in the header: the only way the current tenant changes, and only by POST."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import Tenant

from .. import tenancy
from ..tenancy import dashboard_view
from .redirects import next_or


@require_POST
@dashboard_view()
def switch_tenant(request):
    tenant = Tenant.objects.filter(slug=request.POST.get("tenant", "")).first()
    if tenant is None or not tenancy.switch(request, tenant.id):
        messages.error(request, "You are not a member of that tenant.")
    # a page of the dashboard, but not one object's page (a job, say): it belongs to the old tenant
    target = next_or(request, reverse("dashboard:overview"))
    return redirect(target if "/jobs/" not in target else reverse("dashboard:overview"))
