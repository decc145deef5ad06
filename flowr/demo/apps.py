from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "flowr.demo"
    label = "flowr_demo"
    verbose_name = "Flowr demo rules"
    default_auto_field = "django.db.models.BigAutoField"
