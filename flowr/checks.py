"""System checks: the configured task-state store must be usable."""
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register()
def check_state_store(app_configs, **kwargs):
    from .statestore import get_store

    try:
        get_store()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="flowr.E001",
                             hint="Name a module with a StateStore(BaseStateStore) class.")]
    return []
