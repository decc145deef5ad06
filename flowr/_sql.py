"""Precompiled SQL for the stepping hot path.

Building a query through the ORM costs ~100–170 µs in Python, several times what
SQLite spends running it; a step needs three statements, so the engine sends them
with SQL built once per model and backend, with values prepared by the model fields
themselves (so types, UUIDs, JSON and time zones are handled exactly like the ORM).
"""
from django.db import connection

_SQL = {}


def _q(name):
    return connection.ops.quote_name(name)


def _row_reader(model):
    """(SQL column list, field names, per-column converters) for reading whole rows."""
    key = ("reader", connection.vendor, model)
    reader = _SQL.get(key)
    if reader is None:
        meta = model._meta
        fields = list(meta.concrete_fields)
        converters = []
        for field in fields:
            col = field.get_col(meta.db_table)
            found = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
            converters.append((col, found))
        columns = ", ".join(_q(f.column) for f in fields)
        reader = _SQL[key] = (columns, [f.attname for f in fields], converters)
    return reader


def lock(model, pk):
    """Read one row by primary key and lock it until the transaction ends."""
    meta = model._meta
    columns, names, converters = _row_reader(model)
    key = ("lock", connection.vendor, model)
    sql = _SQL.get(key)
    if sql is None:
        sql = f"SELECT {columns} FROM {_q(meta.db_table)} WHERE {_q(meta.pk.column)} = %s"
        if connection.features.has_select_for_update:
            sql += " FOR UPDATE"
        _SQL[key] = sql
    with connection.cursor() as cursor:
        cursor.execute(sql, [meta.pk.get_db_prep_value(pk, connection)])
        row = cursor.fetchone()
    if row is None:
        raise model.DoesNotExist(f"{meta.object_name} {pk} does not exist.")
    values = list(row)
    for i, (col, found) in enumerate(converters):
        for convert in found:
            values[i] = convert(values[i], col, connection)
    return model.from_db(connection.alias, names, values)


def _update_sql(obj, fields):
    model = type(obj)
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    key = ("update", connection.vendor, model, tuple(fields))
    sql = _SQL.get(key)
    if sql is None:
        sets = ", ".join(f"{_q(f.column)} = %s" for f in columns)
        sql = _SQL[key] = f"UPDATE {_q(meta.db_table)} SET {sets} WHERE {_q(meta.pk.column)} = %s"
    params = [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in columns]
    params.append(meta.pk.get_db_prep_value(obj.pk, connection))
    return sql, params


def _insert_sql(obj):
    model = type(obj)
    meta = model._meta
    fields = [f for f in meta.concrete_fields if f is not meta.auto_field]
    key = ("insert", connection.vendor, model)
    sql = _SQL.get(key)
    if sql is None:
        cols = ", ".join(_q(f.column) for f in fields)
        marks = ", ".join(["%s"] * len(fields))
        sql = f"INSERT INTO {_q(meta.db_table)} ({cols}) VALUES ({marks})"
        if connection.features.can_return_columns_from_insert:
            sql += f" RETURNING {_q(meta.pk.column)}"
        _SQL[key] = sql
    return sql, [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]


def _execute_insert(sql, params, obj):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if connection.features.can_return_columns_from_insert:
            obj.pk = cursor.fetchone()[0]
        else:  # pragma: no cover - old SQLite
            obj.pk = cursor.lastrowid
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj


def update(obj, fields):
    """UPDATE the named fields of `obj` (already set on it) by primary key."""
    sql, params = _update_sql(obj, fields)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def insert(obj):
    """INSERT `obj` (auto primary key) and set its pk; one statement."""
    sql, params = _insert_sql(obj)
    return _execute_insert(sql, params, obj)


def update_then_insert(obj, fields, new):
    """UPDATE `obj`'s fields and INSERT `new`: one round trip on PostgreSQL, two elsewhere.

    PostgreSQL runs a data-modifying WITH clause whether or not the main statement
    reads it, so the update and the insert travel as one statement.
    """
    if connection.vendor != "postgresql":
        update(obj, fields)
        return insert(new)
    update_sql, update_params = _update_sql(obj, fields)
    insert_sql, insert_params = _insert_sql(new)
    sql = f"WITH _flowr_update AS ({update_sql}) {insert_sql}"
    return _execute_insert(sql, update_params + insert_params, new)
