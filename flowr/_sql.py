"""Precompiled SQL for the stepping hot path.

Building a query through the ORM costs ~100–170 µs in Python, several times what
SQLite spends running it; a step needs three statements, so the engine sends them
with SQL built once per model and backend, with values prepared by the model fields
themselves (so types, UUIDs, JSON and time zones are handled exactly like the ORM).
Each call looks the connection up once (not through django.db.connection, a proxy
whose every attribute costs a thread-local lookup).
"""
from django.db import DEFAULT_DB_ALIAS, connections

_SQL = {}


def _db():
    return connections[DEFAULT_DB_ALIAS]


def _q(conn, name):
    return conn.ops.quote_name(name)


def _row_reader(conn, model):
    """(SQL column list, field names, per-column converters) for reading whole rows."""
    key = ("reader", conn.vendor, model)
    reader = _SQL.get(key)
    if reader is None:
        meta = model._meta
        fields = list(meta.concrete_fields)
        converters = []
        for field in fields:
            col = field.get_col(meta.db_table)
            found = conn.ops.get_db_converters(col) + field.get_db_converters(conn)
            converters.append((col, found))
        columns = ", ".join(_q(conn, f.column) for f in fields)
        reader = _SQL[key] = (columns, [f.attname for f in fields], converters)
    return reader


def lock(model, pk):
    """Read one row by primary key and lock it until the transaction ends."""
    conn = _db()
    meta = model._meta
    columns, names, converters = _row_reader(conn, model)
    key = ("lock", conn.vendor, model)
    sql = _SQL.get(key)
    if sql is None:
        sql = (f"SELECT {columns} FROM {_q(conn, meta.db_table)} "
               f"WHERE {_q(conn, meta.pk.column)} = %s")
        if conn.features.has_select_for_update:
            sql += " FOR UPDATE"
        _SQL[key] = sql
    with conn.cursor() as cursor:
        cursor.execute(sql, [meta.pk.get_db_prep_value(pk, conn)])
        row = cursor.fetchone()
    if row is None:
        raise model.DoesNotExist(f"{meta.object_name} {pk} does not exist.")
    values = list(row)
    for i, (col, found) in enumerate(converters):
        for convert in found:
            values[i] = convert(values[i], col, conn)
    return model.from_db(conn.alias, names, values)


def _update_sql(conn, obj, fields):
    model = type(obj)
    meta = model._meta
    key = ("update", conn.vendor, model, tuple(fields))
    found = _SQL.get(key)
    if found is None:
        columns = [meta.get_field(name) for name in fields]
        sets = ", ".join(f"{_q(conn, f.column)} = %s" for f in columns)
        found = _SQL[key] = (f"UPDATE {_q(conn, meta.db_table)} SET {sets} "
                             f"WHERE {_q(conn, meta.pk.column)} = %s", columns)
    sql, columns = found
    params = [f.get_db_prep_save(getattr(obj, f.attname), conn) for f in columns]
    params.append(meta.pk.get_db_prep_value(obj.pk, conn))
    return sql, params


def _insert_sql(conn, obj):
    model = type(obj)
    meta = model._meta
    key = ("insert", conn.vendor, model)
    found = _SQL.get(key)
    if found is None:
        fields = [f for f in meta.concrete_fields if f is not meta.auto_field]
        cols = ", ".join(_q(conn, f.column) for f in fields)
        marks = ", ".join(["%s"] * len(fields))
        sql = f"INSERT INTO {_q(conn, meta.db_table)} ({cols}) VALUES ({marks})"
        if conn.features.can_return_columns_from_insert:
            sql += f" RETURNING {_q(conn, meta.pk.column)}"
        found = _SQL[key] = (sql, fields)
    sql, fields = found
    return sql, [f.get_db_prep_save(f.pre_save(obj, True), conn) for f in fields]


def _execute_insert(conn, sql, params, obj):
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        if conn.features.can_return_columns_from_insert:
            obj.pk = cursor.fetchone()[0]
        else:  # pragma: no cover - old SQLite
            obj.pk = cursor.lastrowid
    obj._state.adding = False
    obj._state.db = conn.alias
    return obj


def update(obj, fields):
    """UPDATE the named fields of `obj` (already set on it) by primary key."""
    conn = _db()
    sql, params = _update_sql(conn, obj, fields)
    with conn.cursor() as cursor:
        cursor.execute(sql, params)


def insert(obj):
    """INSERT `obj` (auto primary key) and set its pk; one statement."""
    conn = _db()
    sql, params = _insert_sql(conn, obj)
    return _execute_insert(conn, sql, params, obj)


def update_then_insert(obj, fields, new):
    """UPDATE `obj`'s fields and INSERT `new`: one round trip on PostgreSQL, two elsewhere.

    PostgreSQL runs a data-modifying WITH clause whether or not the main statement
    reads it, so the update and the insert travel as one statement.
    """
    conn = _db()
    if conn.vendor != "postgresql":
        update(obj, fields)
        return insert(new)
    update_sql, update_params = _update_sql(conn, obj, fields)
    insert_sql, insert_params = _insert_sql(conn, new)
    sql = f"WITH _flowr_update AS ({update_sql}) {insert_sql}"
    return _execute_insert(conn, sql, update_params + insert_params, new)
