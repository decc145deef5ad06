"""State options (flowr.options): durations, the form, the builder, versions, files, diffs."""
import pytest
from django.contrib.auth.models import Group

from flowr import builder, engine, interchange, versioning
from flowr.exceptions import GraphError, OptionsInvalid
from flowr.options import (
    Choices, StateOptionsForm, clean_options, describe, format_duration, parse_duration,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("text, seconds", [
    ("2 days", 172800), ("36h", 129600), ("90 minutes", 5400), ("1d 12h", 129600),
    ("1 day, 12 hours", 129600), ("1 week", 604800), ("45s", 45), ("1.5 hours", 5400),
    ("P2D", 172800), ("  3 Hours ", 10800),
])
def test_durations_in_plain_words(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "3", "abc", "2 parsecs", "0s", "days 2", "2 days x",
                                  "99999 weeks", "-2 days"])
def test_durations_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_durations_are_written_back_in_words():
    assert format_duration(129600) == "1 day 12 hours"
    assert format_duration(60) == "1 minute"
    assert format_duration(3661) == "1 hour 1 minute 1 second"


@pytest.fixture
def people(django_user_model):
    reviewers = Group.objects.create(name="Reviewers")
    Group.objects.create(name="Shipping")
    alice = django_user_model.objects.create_user("alice", password="pw", is_staff=True)
    alice.groups.add(reviewers)
    django_user_model.objects.create_user("bob", password="pw", is_staff=True)
    return Choices.load()


def form(data, children=(("k1", "Closed"),), choices=None):
    return StateOptionsForm(data=data, children=children, choices=choices)


def test_form_cleans_to_the_normalised_options(people):
    valid = form({"groups": ["Reviewers", "Shipping"], "assign": "user", "assign_user": "alice",
                  "due_after": "2 days", "timeout_to": "k1", "remind_after": "1 day"},
                 choices=people)
    assert valid.is_valid(), valid.errors
    assert valid.options() == {"groups": ["Reviewers", "Shipping"], "assign": "user",
                               "assign_user": "alice", "due_after": 172800,
                               "timeout_to": "k1", "remind_after": 86400}
    empty = form({}, choices=people)
    assert empty.is_valid() and empty.options() == {}


@pytest.mark.parametrize("data, field, text", [
    ({"assign": "user"}, "assign_user", "Choose the user"),
    ({"groups": ["Shipping"], "assign": "user", "assign_user": "alice"}, "assign_user",
     "alice is in none of the candidate groups"),
    ({"timeout_to": "k1"}, "due_after", "Set “Due after”"),
    ({"due_after": "1 day", "remind_after": "2 days"}, "remind_after", "before the state is due"),
    ({"due_after": "soon"}, "due_after", "is not a duration"),
    ({"groups": ["Nobody"]}, "groups", "Select a valid choice"),
    ({"timeout_to": "elsewhere", "due_after": "1h"}, "timeout_to", "Select a valid choice"),
])
def test_form_refuses_with_a_message_on_the_field(people, data, field, text):
    bound = form(data, choices=people)
    assert not bound.is_valid()
    assert text in " ".join(bound.errors[field])


def test_clean_options_refuses_what_no_form_could_hold(people):
    for bad, text in (([], "must be an object"), ({"colour": 1}, "Unknown state option"),
                      ({"groups": "Reviewers"}, "list of group names"),
                      ({"due_after": [1]}, "number of seconds")):
        with pytest.raises(OptionsInvalid, match=text):
            clean_options(bad, choices=people)
    assert clean_options({"due_after": 60, "groups": ["Reviewers"]}, choices=people) == {
        "groups": ["Reviewers"], "due_after": 60}


def test_describe_summarises():
    text = describe({"groups": ["Reviewers"], "assign": "starter", "due_after": 172800,
                     "timeout_to": "k", "remind_after": 3600}, names={"k": "Closed"})
    assert text == "Reviewers · assign: starter · due 2 days → Closed · remind 1 hour"


# -- the builder ---------------------------------------------------------------------------

@pytest.fixture
def ticket(demo_machines):
    return demo_machines["support"]


def state(machine, name):
    return machine.states.get(name=name)


def test_builder_saves_options_and_checks_the_timeout_target(people, ticket):
    waiting = state(ticket, "Waiting on customer")
    opened = state(ticket, "Open")
    builder.update_state(waiting, options={"groups": ["Reviewers"], "due_after": "7 days",
                                           "timeout_to": opened.key})
    assert state(ticket, "Waiting on customer").options == {
        "groups": ["Reviewers"], "due_after": 604800, "timeout_to": opened.key}
    closed = state(ticket, "Closed")
    with pytest.raises(OptionsInvalid, match="On timeout step to"):
        builder.update_state(waiting, options={"due_after": 60, "timeout_to": closed.key})


def test_a_new_state_cannot_time_out_yet(people):
    machine = builder.create_machine("flowr_example", "Options")
    a = machine.root_state
    with pytest.raises(OptionsInvalid, match="On timeout step to"):
        builder.add_child(a, "flowr_example.C", options={"due_after": "1h",
                                                         "timeout_to": a.key})
    c = builder.add_child(a, "flowr_example.C", options={"groups": ["Shipping"],
                                                         "due_after": "1h"})
    assert c.options == {"groups": ["Shipping"], "due_after": 3600}


def test_removing_what_a_timeout_needs_is_refused(people, example_machine):
    a, c, e = (state(example_machine, name) for name in "ACE")
    builder.update_state(e, options={"due_after": 60, "timeout_to": a.key})
    with pytest.raises(GraphError, match="'E' times out to 'A'"):
        builder.disconnect(e, a)
    builder.update_state(c, options={"due_after": 60, "timeout_to": e.key})
    with pytest.raises(GraphError, match="'C' times out to 'E'"):
        builder.prune_state(e)
    builder.update_state(c, options={"due_after": 60})  # no automatic step any more
    assert set(builder.prune_state(e)) == {"E"}


def test_options_are_published_and_change_the_checksum_only_when_set(people, example_machine):
    v1 = example_machine.latest_version()
    assert all("options" not in s for s in v1.definition["states"])
    assert engine.publish(example_machine).pk == v1.pk  # unchanged: no new version
    builder.update_state(state(example_machine, "C"), options={"groups": ["Reviewers"]})
    v2 = engine.publish(example_machine)
    assert v2.number == 2 and engine.compiled(v2).options[state(example_machine, "C").key] == {
        "groups": ["Reviewers"]}
    diff = versioning.diff_definitions(v1.definition, v2.definition)
    assert diff.lines() == ["Changed options of 'C': groups: '—' → ['Reviewers']."]


def test_options_travel_through_export_and_import(people, example_machine):
    c = state(example_machine, "C")
    builder.update_state(c, options={"groups": ["Reviewers"], "assign": "stepper",
                                     "due_after": 90, "timeout_to": state(example_machine,
                                                                          "D").key})
    doc = interchange.document_of(example_machine)
    [item] = [s for s in doc["graph"]["states"] if s["name"] == "C"]
    assert item["options"]["groups"] == ["Reviewers"]
    assert interchange.validate_document(doc) == []
    example_machine.states.update(options={})
    interchange.apply_document(doc)
    assert state(example_machine, "C").options == item["options"]


def test_import_refuses_unknown_groups_and_bad_timeouts(people, example_machine):
    doc = interchange.document_of(example_machine)
    states = doc["graph"]["states"]
    states[0]["options"] = {"groups": ["Ghosts"]}
    states[1]["options"] = {"due_after": 60, "timeout_to": states[0]["key"]}
    errors = " ".join(interchange.validate_document(doc))
    assert "Candidate groups: Select a valid choice. Ghosts" in errors
    assert "On timeout step to" in errors
