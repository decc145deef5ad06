"""The machine admin: add from a rule set, and the builder page with buttons per state."""
from django import forms
from django.contrib import admin

from .. import builder
from ..models import Machine, RuleSetRecord
from ..rules import get_rule_sets
from . import builder_views
from .compare import MachineCompareMixin
from .importexport import MachineImportExportMixin
from .versioning import MachineVersioningMixin


class MachineAddForm(forms.ModelForm):
    """Adding a machine: choose a registered rule set, a name and a description."""

    class Meta:
        model = Machine
        fields = ["rule_set", "name", "description"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        keys = [rule_set.key for rule_set in get_rule_sets()]
        self.fields["rule_set"].queryset = RuleSetRecord.objects.filter(key__in=keys)
        self.fields["rule_set"].help_text = ("The machine's states will use the rules of this "
                                             "set; it starts with the set's root rule.")


@admin.register(Machine)
class MachineAdmin(MachineCompareMixin, MachineImportExportMixin, MachineVersioningMixin):
    """Machines; the change page is the builder (flowr/admin/builder_views.py)."""

    change_form_template = "admin/flowr/machine/change_form.html"
    list_display = ["name", "rule_set", "archived", "updated_at"]
    list_filter = ["rule_set", "archived"]
    list_select_related = ["rule_set"]
    search_fields = ["name", "description"]
    add_fields = ["rule_set", "name", "description"]
    change_fields = ["name", "description", "rule_set", "draft_status", "archived"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("rule_set")

    def get_fields(self, request, obj=None):
        return list(self.add_fields if obj is None else self.change_fields)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["rule_set", "draft_status"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = MachineAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    @admin.display(description="Status")
    def draft_status(self, obj):
        return getattr(obj, "_flowr_status", "")

    def save_model(self, request, obj, form, change):
        """A new machine is created by the builder, with its root state."""
        if change:
            return super().save_model(request, obj, form, change)
        created = builder.create_machine(obj.rule_set, obj.name, obj.description)
        for model_field in Machine._meta.concrete_fields:
            setattr(obj, model_field.attname, getattr(created, model_field.attname))
        obj._state.adding, obj._state.db = False, created._state.db
        return None

    def log_addition(self, request, obj, message):
        root = obj.states.filter(is_root=True).values_list("name", flat=True).first()
        return super().log_addition(
            request, obj, f"Created machine {obj.name} from rule set {obj.rule_set.key} "
                          f"with its root state {root}.")

    def render_change_form(self, request, context, add=False, change=False, form_url="",
                           obj=None):
        url_name = getattr(request.resolver_match, "url_name", "")
        if obj is not None and obj.pk and url_name == "flowr_machine_change":
            context["flowr"] = builder_views.builder_context(self, request, obj)
            obj._flowr_status = context["flowr"]["status"]
        return super().render_change_form(request, context, add=add, change=change,
                                          form_url=form_url, obj=obj)

    def get_urls(self):
        return builder_views.urls(self) + super().get_urls()
