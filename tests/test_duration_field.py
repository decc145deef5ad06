"""The duration form field of the timing options: plain input accepted, anything else refused."""
import pytest
from django import forms

from flowr.options import DurationField, StateOptionsForm


class Form(forms.Form):
    due = DurationField(required=False)


@pytest.mark.parametrize("typed, seconds", [
    ("2 days", 172800), ("36h", 129600), ("90 minutes", 5400), ("1 day 12 hours", 129600),
    ("1d, 12h", 129600), ("2 Weeks", 1209600), ("45 sec", 45), ("1.5h", 5400),
    ("PT90M", 5400), ("", None), ("   ", None),
])
def test_accepted_inputs_clean_to_seconds(typed, seconds):
    form = Form({"due": typed})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["due"] == seconds


@pytest.mark.parametrize("typed, message", [
    ("soon", "is not a duration"), ("2", "is not a duration"), ("2 parsecs", "is not a duration"),
    ("days 2", "is not a duration"), ("2 days later", "is not a duration"),
    ("-2 days", "is not a duration"), ("0 minutes", "at least one second"),
    ("0.2s", "at least one second"), ("11 years", "is not a duration"),
    ("99999 weeks", "at most ten years"), ("2\x00days", "is not a duration"),
    ("9" * 5000 + " days", "at most ten years"),
])
def test_refused_inputs_are_form_errors(typed, message):
    form = Form({"due": typed})
    assert not form.is_valid()
    assert message in form.errors["due"][0]


def test_stored_seconds_are_shown_in_words_and_validate_again():
    form = Form(initial={"due": 129600})
    assert 'value="1 day 12 hours"' in str(form["due"])
    assert Form({"due": "1 day 12 hours"}).is_valid()
    assert 'placeholder="e.g. 2 days"' in str(form["due"])


def test_the_options_form_reports_a_bad_duration_on_its_field():
    form = StateOptionsForm({"due_after": "tomorrow", "remind_after": "1 hour"},
                            children=[("b", "B")], choices=_no_choices())
    assert not form.is_valid()
    assert list(form.errors) == ["due_after"]
    assert "“tomorrow” is not a duration" in form.errors["due_after"][0]


def _no_choices():
    from flowr.options import Choices

    return Choices()
