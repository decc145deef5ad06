from django.db import models


class DemoPermissions(models.Model):
    """Holds the demo rules' permissions only; no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("approve_order", "Can approve orders (demo)")]
