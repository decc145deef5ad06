"""Finding instances in the admin list: search, filters and columns for what they are about.

The search box looks in business keys, titles, machine names, instance ids (a prefix,
"#3f2a1b4c" as shown for unnamed instances) and the values of the task-state keys that
rule sets declare searchable (Instance.search_data, projected in each step's
transaction). Filters: status, outcome, date ranges of start and last activity
(django-admin-rangefilter) and "key = value" for the declared keys. The declared keys
are also sortable list columns.

On PostgreSQL every branch of the search can use an index (migration 0003_search:
trigram indexes on the upper-cased key, title and search values; a jsonb_path_ops GIN
index serves the key = value filter through containment, @>).
"""
import functools
import re

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.db import connections
from django.db.models import Func, Q, TextField
from django.db.models.fields.json import KeyTransform
from django.utils.html import format_html
from rangefilter.filters import DateRangeFilterBuilder

from ..models import Machine
from ..rules import get_rule_sets
from .instance_filters import machine_id

SEARCH_MAX = 200
VALUE_MAX = 200
DATA_PREFIX = "data__"
DATA_COLUMNS_MAX = 6
_HEX = re.compile(r"[0-9a-f]{4,32}")


def declared_keys(rule_set_key=None):
    """The searchable task-state keys rule sets declare (one set's, or all), in order."""
    keys = []
    for rule_set in get_rule_sets():
        if rule_set_key in (None, rule_set.key):
            keys += [k for rule in rule_set.rules.values() for k in rule.search_fields]
    return list(dict.fromkeys(keys))


def keys_for(request):
    """The declared keys of the machine the list is filtered on, else of every rule set."""
    pk = machine_id(request)
    if pk is not None:
        rule_set = (Machine.objects.filter(pk=pk).values_list("rule_set__key", flat=True)
                    .first())
        if rule_set:
            return declared_keys(rule_set)
    return declared_keys()


def outcomes():
    """The outcomes rules declare (for the outcome filter), sorted."""
    return sorted({rule.outcome for rule_set in get_rule_sets()
                   for rule in rule_set.rules.values() if rule.outcome})


# -- search -----------------------------------------------------------------------------

class SearchValues(Func):
    """PostgreSQL: the values (not the keys) of search_data as one text, for ILIKE."""

    template = "jsonb_path_query_array(%(expressions)s, '$.*')::text"
    output_field = TextField()


def _id_range(term):
    """Q for instance ids starting with the hex digits of `term` ("#3f2a…"), or None."""
    digits = term.lstrip("#").replace("-", "").lower()
    if not _HEX.fullmatch(digits):
        return None
    return Q(pk__gte=digits.ljust(32, "0"), pk__lte=digits.ljust(32, "f"))


def _values_q(term, vendor):
    if vendor == "postgresql":
        return Q(flowr_search_values__icontains=term)
    q = Q()  # elsewhere: each declared key's value as text (aliased by `search`)
    for i, _key in enumerate(declared_keys()):
        q |= Q(**{f"flowr_value_{i}__icontains": term})
    return q


def search(queryset, term):
    """Instances whose key, title, machine name, id or searchable values match `term`."""
    vendor = connections[queryset.db].vendor
    if vendor == "postgresql":
        queryset = queryset.alias(flowr_search_values=SearchValues("search_data"))
    else:
        from django.db.models.functions import Cast

        queryset = queryset.alias(**{
            f"flowr_value_{i}": Cast(KeyTransform(key, "search_data"), TextField())
            for i, key in enumerate(declared_keys())})
    q = Q(business_key__icontains=term) | Q(title__icontains=term) | _values_q(term, vendor)
    # Machine ids first (a few rows), so that the condition can use the index.
    machines = list(Machine.objects.filter(name__icontains=term).values_list("pk", flat=True))
    if machines:
        q |= Q(machine_id__in=machines)
    id_range = _id_range(term)
    if id_range is not None:
        q |= id_range
    return queryset.filter(q)


# -- filters -----------------------------------------------------------------------------

def _refuse(request, text):
    """A clear message, then the admin's "incorrect lookup" answer (never a 500)."""
    messages.error(request, text)
    raise IncorrectLookupParameters(text)


def clean_value(request, key, value):
    """A filter value as typed, refused when too long or containing NUL."""
    if len(value) > VALUE_MAX or "\x00" in value:
        _refuse(request, f"The filter value for '{key[:40]}' must be at most {VALUE_MAX} "
                         f"characters of text.")
    return value


def data_q(key, value, vendor):
    """Q for search_data[key] == value, where "1200" also matches the number 1200."""
    candidates = [value]
    if re.fullmatch(r"-?\d{1,15}", value):
        candidates.append(int(value))
    elif re.fullmatch(r"-?\d{1,15}\.\d{1,15}", value):
        candidates.append(float(value))
    elif value in ("true", "false"):
        candidates.append(value == "true")
    q = Q()
    for candidate in candidates:
        if vendor == "postgresql":  # containment: served by the GIN index
            q |= Q(search_data__contains={key: candidate})
        else:
            q |= Q(**{"flowr_data_filter__exact": candidate})
    return q


class DataFilter(admin.ListFilter):
    """ "key = value" for the declared searchable keys: ?data__customer=Acme%20Ltd."""

    title = "task data (exact value)"
    template = "admin/flowr/instance/data_filter.html"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.all_keys, self.keys = declared_keys(), keys_for(request)
        for name in [n for n in params if n.startswith(DATA_PREFIX) and self.all_keys]:
            value = params.pop(name)
            value = value[-1] if isinstance(value, list) else value
            if value.strip():  # the form sends every key's input; empty ones filter nothing
                self.used_parameters[name] = value.strip()

    def has_output(self):
        return bool(self.all_keys)

    def expected_parameters(self):
        return [DATA_PREFIX + key for key in self.all_keys] + list(self.used_parameters)

    def choices(self, changelist):
        """The inputs (one per key) and a link removing each active pair."""
        # The GET form keeps the list's other parameters (page and error flag dropped).
        self.hidden = [(name, value) for name, values in changelist.filter_params.items()
                       if not name.startswith(DATA_PREFIX) for value in values]
        for key in dict.fromkeys([*self.keys, *(n[len(DATA_PREFIX):]
                                                for n in self.used_parameters)]):
            name = DATA_PREFIX + key
            yield {"key": key.replace("_", " "), "name": name,
                   "value": self.used_parameters.get(name, ""),
                   "remove": changelist.get_query_string(remove=[name])}

    def queryset(self, request, queryset):
        vendor = connections[queryset.db].vendor
        for name, value in self.used_parameters.items():
            key = name[len(DATA_PREFIX):]
            if key not in self.all_keys:
                _refuse(request, f"'{key[:40]}' is not a searchable key; the rule sets "
                                 f"declare: {', '.join(self.all_keys)}.")
            if vendor != "postgresql":
                queryset = queryset.alias(flowr_data_filter=KeyTransform(key, "search_data"))
            queryset = queryset.filter(data_q(key, clean_value(request, key, value), vendor))
        return queryset


class OutcomeFilter(admin.SimpleListFilter):
    """How finished instances ended (the outcomes their final rules declare)."""

    title = "outcome"
    parameter_name = "outcome"

    def lookups(self, request, model_admin):
        return [(outcome, outcome) for outcome in outcomes()] + [("-", "(none)")]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value == "-":
            return queryset.filter(outcome="")
        return queryset.filter(outcome=clean_value(request, "outcome", value))


# -- the mixin ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def data_column(key, alias):
    """A sortable list column showing search_data[key] (the same object for the same key:
    the admin's sortable_by compares list_display items)."""
    def column(obj):
        value = (obj.search_data or {}).get(key)
        return format_html('<span class="flowr-wrap">{}</span>', value) if value not in (
            None, "") else ""
    column.__name__ = alias
    return admin.display(description=key.replace("_", " "), ordering=alias)(column)


class InstanceSearchMixin:
    """Search box, filters and declared-key columns of the instance list."""

    search_help_text = ("Business key, title, machine name, instance id (#3f2a…) or a value "
                        "of the task data its rules declare searchable.")

    def get_search_fields(self, request):
        # Only shows the search box; get_search_results does the searching.
        return ["business_key", "title", "machine__name"]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.replace("\x00", "").strip()
        if not term:
            return queryset, False
        if len(term) > SEARCH_MAX:
            messages.warning(request, f"Searched for the first {SEARCH_MAX} characters only.")
            term = term[:SEARCH_MAX]
        return search(queryset, term), False

    def get_list_filter(self, request):
        return [*super().get_list_filter(request), OutcomeFilter,
                ("started_at", DateRangeFilterBuilder(title="start date")),
                ("last_activity", DateRangeFilterBuilder(title="last activity")),
                DataFilter]

    def _data_columns(self, request):
        keys = keys_for(request)[:DATA_COLUMNS_MAX]
        return [(key, f"flowr_data_{i}") for i, key in enumerate(keys)]

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        at = columns.index("status_label") + 1 if "status_label" in columns else len(columns)
        columns.insert(at, "outcome_label")
        data = [data_column(key, alias) for key, alias in self._data_columns(request)]
        end = columns.index("next_steps") if "next_steps" in columns else len(columns)
        return columns[:end] + data + columns[end:]

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        aliases = {alias: KeyTransform(key, "search_data")
                   for key, alias in self._data_columns(request)}
        return queryset.alias(**aliases) if aliases else queryset

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))
        if "outcome_label" not in fields:
            at = fields.index("status_label") + 1 if "status_label" in fields else len(fields)
            fields.insert(at, "outcome_label")
        return fields

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "outcome_label"]

    @admin.display(description="outcome", ordering="outcome")
    def outcome_label(self, obj):
        return obj.outcome or ""

