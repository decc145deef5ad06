"""One way to read an id from a URL or a form: a malformed one selects nothing.

A view turns "nothing" into a 404 or a message; it never reaches the database with a
value the column cannot hold (text for a number or a UUID, NUL, an integer out of range),
which would be a 500 on PostgreSQL and sometimes on SQLite.
"""
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import Http404
from django.shortcuts import get_object_or_404


def parse_pk(model, value, field=None):
    """`value` as `model`'s primary key (or `field`), or None when it cannot be one."""
    field = field or model._meta.pk
    if value is None or isinstance(value, (list, dict)):
        return None
    try:
        parsed = field.to_python(value)
    except (ValidationError, ValueError, TypeError, OverflowError):
        return None
    if isinstance(parsed, str) and ("\x00" in parsed or not parsed):
        return None
    if isinstance(parsed, int) and not _in_range(field, parsed):
        return None
    return parsed


def parse_pks(model, values):
    """Every value as a primary key of `model`, or None when any is malformed."""
    parsed = [parse_pk(model, value) for value in values]
    return None if any(pk is None for pk in parsed) else parsed


def get_or_404(queryset, value):
    """The object of `queryset` whose primary key is `value`; 404 when malformed or absent."""
    pk = parse_pk(queryset.model, value)
    if pk is None:
        raise Http404(f"No {queryset.model._meta.verbose_name} with id {str(value)[:40]!r}.")
    return get_object_or_404(queryset, pk=pk)


def _in_range(field, number):
    low, high = connection.ops.integer_field_range(field.get_internal_type())
    return (low is None or number >= low) and (high is None or number <= high)
