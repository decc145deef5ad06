"""Mirror the registered rule sets into RuleSetRecord rows."""
from django.utils import timezone

from .rules import get_rule_sets


def sync_rule_sets(using="default"):
    """Create/update a row per registered rule set; mark vanished ones unregistered.

    Returns (created, updated, unregistered) counts.
    """
    from .models import RuleSetRecord

    records = RuleSetRecord.objects.using(using)
    existing = {r.key: r for r in records.all()}
    created = updated = 0
    now = timezone.now()
    for rule_set in get_rule_sets():
        values = {"name": rule_set.name, "description": rule_set.description,
                  "root_rule_key": rule_set.root_key, "is_registered": True}
        row = existing.pop(rule_set.key, None)
        if row is None:
            records.create(key=rule_set.key, synced_at=now, **values)
            created += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            records.filter(pk=row.pk).update(synced_at=now, **values)
            updated += 1
    gone = [r.pk for r in existing.values() if r.is_registered]
    records.filter(pk__in=gone).update(is_registered=False, synced_at=now)
    return created, updated, len(gone)
