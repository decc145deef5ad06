"""The admin app with Flowr's admin site as the default site."""
from django.contrib.admin.apps import AdminConfig


class FlowrAdminConfig(AdminConfig):
    default_site = "flowr.admin_site.FlowrAdminSite"
