"""Flowr URLs: the admin is the only interface; / leads to it."""
from django.contrib import admin
from django.http import Http404
from django.urls import path
from django.views.generic import RedirectView

from flowr.views import healthz, healthz_timers


def _not_used(request):
    """Grappelli's lookup URLs: named for its templates, answering 404."""
    raise Http404("Flowr uses no grappelli lookup widgets.")


# Only the names grappelli's templates reverse, never include("grappelli.urls"): its
# switch-user view changes the session on a GET, and its lookups let any staff user
# read and filter any model (users included). Flowr's admin uses no lookup widgets.
_GRAPPELLI = [
    path(f"grappelli/lookup/{kind}/", _not_used, name=f"grp_{name}_lookup")
    for kind, name in (("related", "related"), ("m2m", "m2m"), ("autocomplete", "autocomplete"))
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("healthz/timers", healthz_timers, name="healthz_timers"),
    *_GRAPPELLI,
    path("admin/", admin.site.urls),
]
