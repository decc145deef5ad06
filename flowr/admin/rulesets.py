"""Rule sets mirror code: read-only pages listing their rules, with a diagram."""
from dataclasses import dataclass

from django.contrib import admin
from django.contrib.admin.utils import unquote

from .. import diagrams
from ..exceptions import RuleNotRegistered
from ..models import RuleSetRecord
from ..rules import get_rule_set


@dataclass(frozen=True)
class RuleRow:
    """One rule of a rule set as its admin page shows it."""

    key: str
    name: str
    description: str
    children: list
    is_root: bool
    multiple_paths: bool
    max_children: int
    settings_fields: list
    step_fields: list
    permission: str


@dataclass(frozen=True)
class FieldInfo:
    """One field of a rule's settings or step form, as the rule-set page describes it."""

    name: str
    label: str
    kind: str
    required: bool
    initial: object
    help_text: str

    def __str__(self):
        return self.name


def _kind(field):
    kind = type(field).__name__.removesuffix("Field")
    return {"Char": "Text", "": "Text"}.get(kind, kind)


def _form_fields(form_class):
    """The fields of a form class: name, label, type, required, initial value and help."""
    if form_class is None:
        return []
    return [FieldInfo(name, str(f.label or name.replace("_", " ").capitalize()),
                      _kind(f), f.required,
                      f.initial, str(f.help_text or ""))
            for name, f in form_class.base_fields.items()]


def rule_rows(rule_set):
    """Every rule of a registered rule set, root first."""
    keys = [rule_set.root_key] + [k for k in rule_set.rule_keys() if k != rule_set.root_key]
    rows = []
    for key in keys:
        rule = rule_set.get(key)
        children = [rule_set.get(c).get_display_name() for c in rule_set.children_keys(key)]
        rows.append(RuleRow(key, rule.get_display_name(), rule.get_description(), children,
                            key == rule_set.root_key, bool(rule.multiple_paths),
                            rule_set.max_children(key), _form_fields(rule.settings_form),
                            _form_fields(rule.step_form), rule.permission or ""))
    return rows


@admin.register(RuleSetRecord)
class RuleSetAdmin(admin.ModelAdmin):
    """Rule sets mirror code: read-only, with their rules and a diagram."""

    change_form_template = "admin/flowr/rulesetrecord/change_form.html"
    list_display = ["name", "key", "root_rule_key", "is_registered", "machine_count",
                    "synced_at"]
    readonly_fields = ["key", "name", "description", "root_rule_key", "is_registered", "synced_at"]

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(_machine_count=Count("machines"))

    @admin.display(description="Machines", ordering="_machine_count")
    def machine_count(self, obj):
        return obj._machine_count

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        record = self.get_object(request, unquote(object_id))
        if record is not None:
            try:
                rule_set = get_rule_set(record.key)
            except RuleNotRegistered as exc:
                extra_context["flowr_unregistered"] = str(exc)
            else:
                extra_context["flowr_rules"] = rule_rows(rule_set)
                extra_context["flowr_diagram"] = diagrams.rule_set_svg(rule_set,
                                                                       interactive=True)
        return super().change_view(request, object_id, form_url, extra_context)
