"""Options every state has, whatever its rule: who works on it and its timing.

A rule's own settings (its settings_form) say what the state does; these options say who
may step from it and when it is due. They are designed once, here, and travel with the
state everywhere its definition goes: stored normalised on ``State.options``, frozen into
published versions (a state's ``"options"`` in a definition, present only when not
empty), exported and imported, versioned by django-reversion and compared by
flowr.versioning. One form, StateOptionsForm, validates them for the builder, imports,
reverts and programs (`clean_options`).

Normalised form (every key optional; empty values are left out):

    {"groups": ["Reviewers"],            # candidate groups (auth.Group names), sorted
     "assign": "starter",                # assign on entry: starter | stepper | user
     "assign_user": "alice",             # the fixed user when assign == "user"
     "due_after": 172800,                # seconds after entering the state
     "timeout_to": "k3f…",               # key of a child state to step to when due
     "remind_after": 86400}              # seconds after entering: send a reminder
"""
import re
from dataclasses import dataclass, field

from django import forms
from django.utils.dateparse import parse_duration as _parse_iso_duration

from .exceptions import OptionsInvalid

KEYS = ("groups", "assign", "assign_user", "due_after", "timeout_to", "remind_after")
ASSIGN_STARTER, ASSIGN_STEPPER, ASSIGN_USER = "starter", "stepper", "user"
ASSIGN_CHOICES = [
    ("", "Nobody (the instance waits to be claimed)"),
    (ASSIGN_STARTER, "The user who started the instance"),
    (ASSIGN_STEPPER, "The user who stepped into this state"),
    (ASSIGN_USER, "A fixed user"),
]
MAX_DURATION = 10 * 365 * 24 * 3600  # ten years: anything longer is a typing mistake

# -- durations ------------------------------------------------------------------------

_UNITS = {}
for _names, _seconds in ((("s", "sec", "secs", "second", "seconds"), 1),
                         (("m", "min", "mins", "minute", "minutes"), 60),
                         (("h", "hr", "hrs", "hour", "hours"), 3600),
                         (("d", "day", "days"), 86400),
                         (("w", "wk", "wks", "week", "weeks"), 7 * 86400)):
    _UNITS.update(dict.fromkeys(_names, _seconds))
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_DURATION_HELP = 'e.g. "2 days", "36h", "90 minutes" or "1 day 12 hours"'


def parse_duration(text):
    """Seconds in a plain duration ("2 days", "36h", "90 minutes", "1d 12h"); ValueError."""
    text = " ".join(str(text).lower().replace(",", " ").replace(" and ", " ").split())
    if not text:
        raise ValueError("Enter a duration.")
    iso = _parse_iso_duration(text.upper()) if text.startswith("p") else None
    seconds = iso.total_seconds() if iso is not None else _sum_parts(text)
    if seconds < 1:
        raise ValueError("A duration must be at least one second.")
    if seconds > MAX_DURATION:
        raise ValueError("A duration must be at most ten years.")
    return int(round(seconds))


def _sum_parts(text):
    total, position = 0.0, 0
    for match in _PART.finditer(text):
        number, unit = match.groups()
        if text[position:match.start()].strip() or unit not in _UNITS:
            break
        total += float(number) * _UNITS[unit]
        position = match.end()
    if position == 0 or text[position:].strip():
        raise ValueError(f"“{text[:60]}” is not a duration; write a number and a unit, "
                         f"{_DURATION_HELP}.")
    return total


def format_duration(seconds):
    """A duration in words: 90 → "1 minute 30 seconds", 172800 → "2 days"."""
    seconds = int(seconds)
    parts = []
    for name, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60),
                       ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
    return " ".join(parts) or "0 seconds"


class DurationField(forms.Field):
    """A duration typed in plain words; cleans to whole seconds (int) or None."""

    widget = forms.TextInput

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", _DURATION_HELP[5:].capitalize() + ".")
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("placeholder", "e.g. 2 days")

    def prepare_value(self, value):
        if isinstance(value, int) and not isinstance(value, bool):
            return format_duration(value)
        return value

    def to_python(self, value):
        if isinstance(value, str):
            value = value.strip()  # only spaces in an optional field: empty, not an error
        if value in (None, ""):
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="invalid")


# -- what may be chosen ---------------------------------------------------------------

@dataclass
class Choices:
    """Group names and staff usernames (with their groups), loaded once per validation run."""

    groups: list = field(default_factory=list)
    users: dict = field(default_factory=dict)  # username -> set of group names

    @classmethod
    def load(cls):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        users = {}
        rows = (get_user_model().objects.filter(is_active=True, is_staff=True)
                .values_list("username", "groups__name").order_by("username"))
        for username, group in rows:
            users.setdefault(username, set()).update([group] if group else [])
        return cls(list(Group.objects.order_by("name").values_list("name", flat=True)), users)


class StateOptionsForm(forms.Form):
    """The options of one state; `children` are (key, name) pairs of its child states."""

    groups = forms.MultipleChoiceField(
        required=False, label="Candidate groups", widget=forms.CheckboxSelectMultiple,
        help_text="Members of these groups may claim and step instances here. None: anyone "
                  "with the step permission.")
    assign = forms.ChoiceField(choices=ASSIGN_CHOICES, required=False,
                               label="Assign on entry")
    assign_user = forms.ChoiceField(required=False, label="Fixed user",
                                    help_text="Used when “Assign on entry” is a fixed user.")
    due_after = DurationField(required=False, label="Due after")
    timeout_to = forms.ChoiceField(required=False, label="On timeout step to")
    remind_after = DurationField(required=False, label="Remind after")

    def __init__(self, *args, children=(), choices=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.choices = choices or Choices.load()
        self.fields["groups"].choices = [(g, g) for g in self.choices.groups]
        self.fields["assign_user"].choices = [("", "—")] + [(u, u) for u in self.choices.users]
        self.fields["timeout_to"].choices = [("", "— no automatic step —"), *children]
        self.children = dict(children)

    def clean(self):
        data = super().clean()
        assign, user = data.get("assign"), data.get("assign_user")
        if assign == ASSIGN_USER and not user:
            self.add_error("assign_user", "Choose the user to assign on entry.")
        groups = set(data.get("groups") or ())
        if assign == ASSIGN_USER and user and groups and not groups & self.choices.users[user]:
            self.add_error("assign_user", f"{user} is in none of the candidate groups "
                                          f"({', '.join(sorted(groups))}).")
        due, remind = data.get("due_after"), data.get("remind_after")
        if data.get("timeout_to") and not due:
            self.add_error("due_after", "Set “Due after” for the automatic step to happen.")
        if due and remind and remind >= due:
            self.add_error("remind_after", "The reminder must come before the state is due.")
        return data

    def options(self):
        """The normalised options dict of a valid form."""
        data = self.cleaned_data
        options = {
            "groups": sorted(data.get("groups") or ()),
            "assign": data.get("assign") or "",
            "assign_user": (data.get("assign_user") or "")
            if data.get("assign") == ASSIGN_USER else "",
            "due_after": data.get("due_after"),
            "timeout_to": data.get("timeout_to") or "",
            "remind_after": data.get("remind_after"),
        }
        return {key: value for key, value in options.items() if value}


def initial(options):
    """Initial data of an unbound StateOptionsForm for stored options."""
    return {key: value for key, value in (options or {}).items() if key in KEYS}


def form_data(options, prefix=None):
    """Stored options as the data a StateOptionsForm binds (e.g. to re-validate them)."""
    return {(f"{prefix}-{key}" if prefix else key): value
            for key, value in (options or {}).items()}


def _bindable(options):
    """Stored options as form data, refusing what no form could hold."""
    if not isinstance(options, dict):
        raise OptionsInvalid(f"State options must be an object (a dict), not "
                             f"{type(options).__name__}.")
    unknown = sorted(str(k) for k in options if k not in KEYS)
    if unknown:
        raise OptionsInvalid(f"Unknown state option(s) {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(KEYS)}.")
    groups = options.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise OptionsInvalid("The option 'groups' must be a list of group names.")
    for key in ("due_after", "remind_after"):
        value = options.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, str))):
            raise OptionsInvalid(f"The option '{key}' must be a number of seconds or a "
                                 f"duration text, not {type(value).__name__}.")
    for key in ("assign", "assign_user", "timeout_to"):
        if not isinstance(options.get(key, ""), str):
            raise OptionsInvalid(f"The option '{key}' must be a text.")
    return options


def clean_options(options, children=(), choices=None, state_name=None):
    """Validate stored/imported options; returns the normalised dict or raises OptionsInvalid.

    `children` are (key, name) pairs of the state's children (for timeout_to).
    """
    if options is None or options == {}:
        return {}
    form = StateOptionsForm(data=_bindable(options), children=children, choices=choices)
    if not form.is_valid():
        where = f" of state '{state_name}'" if state_name else ""
        details = "; ".join(f"{form.fields[k].label if k in form.fields else k}: {' '.join(v)}"
                            for k, v in form.errors.items())
        raise OptionsInvalid(f"The options{where} are invalid: {details}",
                             errors=form.errors.get_json_data())
    return form.options()


def timeout_errors(options_by_key, edges, names=None):
    """Messages for states whose timeout targets a state that is not their child (pure)."""
    names = names or {}
    edge_set = set(edges)
    errors = []
    for key, options in options_by_key.items():
        target = (options or {}).get("timeout_to")
        if target and (key, target) not in edge_set:
            errors.append(f"State '{names.get(key, key)}' times out to "
                          f"'{names.get(target, target)}', which is not one of its next "
                          f"states; change its timing.")
    return errors


def describe(options, names=None):
    """A short summary for lists and diagrams: "Reviewers · due 2 days → Closed"."""
    options, names = options or {}, names or {}
    parts = []
    if options.get("groups"):
        parts.append(", ".join(options["groups"]))
    if options.get("assign"):
        who = options.get("assign_user") if options["assign"] == ASSIGN_USER else options["assign"]
        parts.append(f"assign: {who}")
    if options.get("due_after"):
        due = f"due {format_duration(options['due_after'])}"
        if options.get("timeout_to"):
            due += f" → {names.get(options['timeout_to'], options['timeout_to'])}"
        parts.append(due)
    if options.get("remind_after"):
        parts.append(f"remind {format_duration(options['remind_after'])}")
    return " · ".join(parts)
