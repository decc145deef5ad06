"""Task state kept in a Django model (the default store)."""
import json
from datetime import timedelta

from django.db import DatabaseError, IntegrityError, connections, router, transaction
from django.utils import timezone

from .. import config
from .base import BaseStateStore, StateNotFound, StoreUnavailable, dumps


def _update_returning(connection):
    """True when the database supports UPDATE ... RETURNING (PostgreSQL, SQLite 3.35+)."""
    if connection.vendor == "postgresql":
        return True
    if connection.vendor == "sqlite":
        from sqlite3 import sqlite_version_info

        return sqlite_version_info >= (3, 35)
    return False


def _instance_pk(task_id):
    """The Instance primary key a task id ("<pk>" or "<pk>:<version>") names, or None."""
    import uuid

    try:
        return uuid.UUID(str(task_id).partition(":")[0])
    except ValueError:
        return None


class StateStore(BaseStateStore):
    """Task state in TaskStateRecord rows; writes roll back with the step's transaction.

    Idle timeout: a row is live while it, or the instance whose id is its task id, was
    touched within FLOWS_TASK_IDLE_TIMEOUT. A step already writes the instance's
    last_activity, so stepping keeps the task state alive without another query.
    """

    transactional = True

    def _model(self):
        from ..models import TaskStateRecord

        return TaskStateRecord

    def _cutoff(self):
        timeout = config.task_idle_timeout()
        return timezone.now() - timedelta(seconds=timeout) if timeout else None

    def get_state(self, task_id):
        # Read and refresh (reading counts as interaction) in one statement.
        model = self._model()
        connection = connections[router.db_for_write(model)]
        if _update_returning(connection):
            state = self._get_returning(model, connection, task_id)
        else:
            state = self._get_then_read(model, task_id)
        if state is None:
            raise StateNotFound(f"No task state for task {task_id}.", task_id=task_id)
        return state

    def _get_returning(self, model, connection, task_id):
        meta, qn = model._meta, connection.ops.quote_name
        stamp = meta.get_field("updated_at")
        sql = (f"UPDATE {qn(meta.db_table)} SET {qn(stamp.column)} = %s "
               f"WHERE {qn(meta.pk.column)} = %s")
        params = [stamp.get_db_prep_value(timezone.now(), connection), task_id]
        cutoff = self._cutoff()
        if cutoff is not None:
            sql += f" AND ({qn(stamp.column)} >= %s"
            params.append(stamp.get_db_prep_value(cutoff, connection))
            sql, params = self._or_instance_active(sql, params, connection, task_id, cutoff)
        field = meta.get_field("state")
        with connection.cursor() as cursor:
            cursor.execute(f"{sql} RETURNING {qn(field.column)}", params)
            row = cursor.fetchone()
        return None if row is None else field.from_db_value(row[0], None, connection)

    def _or_instance_active(self, sql, params, connection, task_id, cutoff):
        """Close the cutoff clause with "or its instance was active since the cutoff"."""
        from ..models import Instance

        pk = _instance_pk(task_id)
        if pk is None:
            return sql + ")", params
        meta, qn = Instance._meta, connection.ops.quote_name
        activity = meta.get_field("last_activity")
        sql += (f" OR EXISTS (SELECT 1 FROM {qn(meta.db_table)} WHERE "
                f"{qn(meta.pk.column)} = %s AND {qn(activity.column)} >= %s))")
        params += [meta.pk.get_db_prep_value(pk, connection),
                   activity.get_db_prep_value(cutoff, connection)]
        return sql, params

    def _live(self, rows, cutoff):
        """`rows` narrowed to those touched since `cutoff` or whose instance was active."""
        from django.db.models import Q

        from ..models import Instance

        pks = {task_id: _instance_pk(task_id) for task_id in rows.values_list("task_id",
                                                                              flat=True)}
        active = set(Instance.objects.filter(
            pk__in={pk for pk in pks.values() if pk}, last_activity__gte=cutoff)
            .values_list("pk", flat=True))
        live = [task_id for task_id, pk in pks.items() if pk in active]
        return rows.filter(Q(updated_at__gte=cutoff) | Q(task_id__in=live))

    def peek_state(self, task_id):
        rows = self._model().objects.filter(task_id=task_id)
        cutoff = self._cutoff()
        if cutoff is not None:
            rows = self._live(rows, cutoff)
        found = rows.values_list("state", flat=True).first()
        if found is None:
            raise StateNotFound(f"No task state for task {task_id}.", task_id=task_id)
        return found

    def _get_then_read(self, model, task_id):
        rows = model.objects.filter(task_id=task_id)
        cutoff = self._cutoff()
        if cutoff is not None:
            rows = self._live(rows, cutoff)
        if not rows.update(updated_at=timezone.now()):
            return None
        return model.objects.values_list("state", flat=True).filter(task_id=task_id).first()

    def put_state(self, task_id, state):
        state = json.loads(dumps(state))  # validated and copied: JSON only
        rows, now = self._model().objects, timezone.now()
        # One UPDATE in the common case; INSERT only for a new task id.
        if rows.filter(task_id=task_id).update(state=state, updated_at=now):
            return
        try:
            with transaction.atomic():
                rows.create(task_id=task_id, state=state, updated_at=now)
        except IntegrityError:  # created concurrently: ours is the later write
            rows.filter(task_id=task_id).update(state=state, updated_at=now)

    def touch_state(self, task_id):
        """Nothing to do: a step's last_activity update keeps the row alive (see above)."""

    def delete_state(self, task_id):
        self._model().objects.filter(task_id=task_id).delete()

    def health(self):
        try:
            self._model().objects.filter(task_id="").exists()
        except DatabaseError as exc:
            raise StoreUnavailable(
                f"Django task-state store (flowr.statestore.django_store) cannot read its "
                f"table ({str(exc).splitlines()[0]}); check the database and run migrate."
            ) from exc

    def cleanup(self):
        """Delete expired rows; returns how many were removed."""
        cutoff = self._cutoff()
        if cutoff is None:
            return 0
        stale = self._model().objects.filter(updated_at__lt=cutoff)
        live = self._live(stale, cutoff).values_list("task_id", flat=True)
        deleted, _ = stale.exclude(task_id__in=list(live)).delete()
        return deleted
