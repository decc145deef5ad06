from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class FlowrConfig(AppConfig):
    name = "flowr"
    verbose_name = "Flowr"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.utils.module_loading import autodiscover_modules

        from . import checks  # noqa: F401  (registers system checks)

        # Like admin.autodiscover(): import <app>.flowr_rules of every installed app.
        autodiscover_modules("flowr_rules")
        self._register_reversion()
        post_migrate.connect(_sync_after_migrate, sender=self)
        post_save.connect(_forget_version, sender="flowr.MachineVersion")
        post_delete.connect(_delete_task_state, sender="flowr.Instance")

    def _register_reversion(self):
        # Usually done already by the machine admin (admin autodiscovery runs first).
        from .versioning import register_models

        register_models()


def _sync_after_migrate(sender, using="default", **kwargs):
    from .sync import sync_rule_sets

    sync_rule_sets(using=using)


def _forget_version(sender, instance, created=False, **kwargs):
    if created:
        from .engine import forget_version

        forget_version(instance.pk)


def _delete_task_state(sender, instance, **kwargs):
    """A deleted instance takes its task state with it (after COMMIT, store errors logged)."""
    from django.db import transaction

    from .taskstate import delete_all

    pk, version, previous = instance.pk, instance.task_state_version, \
        instance.task_state_previous
    # robust: the row is gone once this runs; a store that fails (a custom one may raise
    # anything) is logged by Django, never turned into an error page after the fact.
    transaction.on_commit(lambda: delete_all(pk, version, previous), robust=True)
