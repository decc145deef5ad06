"""Read-only presentation of an instance's history for its admin page."""
import json
from dataclasses import dataclass

from ..models import HistoryEntry

HISTORY_LIMIT = 200


@dataclass(frozen=True)
class HistoryRow:
    """One history entry as the instance page shows it."""

    seq: int
    kind: str
    from_name: str
    to_name: str
    user: str
    at: object
    note: str
    data: str
    note_only: bool = False  # an assignment, reminder or edit: the position did not change


def history_rows(instance, limit=HISTORY_LIMIT):
    """The instance's latest history entries, newest first (one query)."""
    entries = (HistoryEntry.objects.filter(instance=instance).select_related("user")
               .order_by("-seq")[:limit])
    return [
        HistoryRow(
            seq=e.seq, kind=e.get_kind_display(), to_name=e.to_name,
            # A note (reminder, incident, assignment, edit) stays where it is: no arrow.
            from_name="" if e.kind in HistoryEntry.NOTES else e.from_name,
            user=e.user.get_username() if e.user else "", at=e.at, note=e.note,
            data=json.dumps(e.data, indent=2, sort_keys=True) if e.data else "",
            note_only=e.kind in HistoryEntry.NOTES,
        )
        for e in entries
    ]


def visited_keys(instance):
    """Keys of every state the instance has been in (one query)."""
    rows = (HistoryEntry.objects.filter(instance=instance).order_by()
            .values_list("to_key", flat=True).distinct())
    return set(rows)
