"""Flowr URLs: the admin is the only interface; / leads to it."""
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from flowr.views import healthz, healthz_timers

admin.site.site_header = "Flowr"
admin.site.site_title = "Flowr"
admin.site.index_title = "State machines"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("healthz/timers", healthz_timers, name="healthz_timers"),
    path("grappelli/", include("grappelli.urls")),
    path("admin/", admin.site.urls),
]
