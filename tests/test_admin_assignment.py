"""Assignment in the admin: the instance page panel, list column and filter, bulk actions,
and the permission matrix (candidates, non-candidates, assignee, override, view-only)."""
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from flowr import assignment, engine
from flowr.models import HistoryEntry, Instance
from tests.desk import STEPPER, make_user, review_machine

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

LIST = reverse("admin:flowr_instance_changelist")


@pytest.fixture
def machine(db):
    return review_machine()


@pytest.fixture
def people(db):
    return {
        "rita": make_user("rita", *STEPPER, groups=["Reviewers"]),
        "rick": make_user("rick", *STEPPER, groups=["Reviewers"]),
        "sam": make_user("sam", *STEPPER, groups=["Shipping"]),
        "boss": make_user("boss", "flowr.view_instance", "flowr.assign_instance"),
        "any": make_user("any", *STEPPER, "flowr.step_any_instance"),
        "viewer": make_user("viewer", "flowr.view_instance", groups=["Reviewers"]),
    }


@pytest.fixture
def review(machine):
    instance = machine.start()
    engine.step(instance, to="Review")
    return fresh(instance)


def fresh(instance):
    return Instance.objects.select_related("assignee").get(pk=instance.pk)


def url(name, instance):
    return reverse(f"admin:flowr_instance_{name}", args=[instance.pk])


def login(user):
    client = Client()
    client.force_login(user)
    return client


def last_message(response):
    return [str(m) for m in get_messages(response.wsgi_request)][-1]


def post(client, name, instance, **data):
    return client.post(url(name, instance), {"position": instance.step_count, **data})


def assignee(instance):
    return getattr(fresh(instance).assignee, "username", None)


# -- single changes on the page -------------------------------------------------------

def test_claim_from_the_page_writes_history_logentry_and_message(people, review):
    client = login(people["rita"])
    page = client.get(url("change", review)).content.decode()
    assert 'id="assignment"' in page and "Reviewers" in page and "you are a member" in page
    assert 'action="%s"' % url("claim", review) in page
    response = post(client, "claim", review)
    assert response.status_code == 302 and response["Location"].endswith("#assignment")
    assert last_message(response) == f"You claimed instance {review.label}; it is assigned to you."
    assert assignee(review) == "rita"
    log = LogEntry.objects.get(object_id=str(review.pk))
    assert log.user == people["rita"] and log.get_change_message() == "Claimed."
    page = client.get(url("change", review)).content.decode()
    assert "flowr-badge\">you<" in page and 'id="flowr-unassign"' in page


def test_a_second_claim_is_told_who_has_it(people, review):
    post(login(people["rita"]), "claim", review)
    response = post(login(people["rick"]), "claim", review)
    assert "already assigned to rita" in last_message(response)
    assert assignee(review) == "rita"


def test_assign_reassign_and_unassign_from_the_page(people, review):
    boss = login(people["boss"])
    page = boss.get(url("change", review)).content.decode()
    assert f'<option value="{people["rita"].pk}">rita</option>' in page
    assert f'<option value="{people["sam"].pk}">' not in page  # not a candidate here
    response = post(boss, "assign", review, user=people["rita"].pk)
    assert last_message(response) == f"Instance {review.label}: assigned to rita."
    page = boss.get(url("change", review)).content.decode()
    assert "Reassign to" in page and f'<option value="{people["rita"].pk}">' not in page
    post(boss, "assign", review, user=people["rick"].pk)
    assert assignee(review) == "rick"
    response = post(boss, "unassign", review)
    assert last_message(response) == f"Instance {review.label} is unassigned (it was rick's)."
    assert assignee(review) is None
    messages = list(LogEntry.objects.filter(object_id=str(review.pk)).order_by("pk")
                    .values_list("change_message", flat=True))
    assert messages == ["Assigned to rita.", "Assigned to rick (was rita).",
                        "Unassigned (was rick)."]
    kinds = list(review.history.order_by("seq").values_list("kind", flat=True))
    assert kinds == ["start", "step", "assign", "assign", "assign"]


def test_assigning_a_non_candidate_or_nobody_is_refused_with_a_message(people, review):
    boss = login(people["boss"])
    response = post(boss, "assign", review, user=people["sam"].pk)
    assert "sam is in none of the candidate groups" in last_message(response)
    for bad in ("", "abc", "99999999", "1" * 40, "%00"):
        response = post(boss, "assign", review, user=bad)
        assert response.status_code == 302
        assert "Choose the user" in last_message(response)
    assert assignee(review) is None


def test_a_stale_claim_is_refused(people, review):
    client = login(people["rita"])
    stale = review.step_count
    engine.step(review, to="Todo")
    response = client.post(url("claim", review), {"position": stale})
    assert "already moved on" in last_message(response) and assignee(review) is None


# -- the permission matrix -------------------------------------------------------------

@pytest.mark.parametrize("who, has, claim, unassign", [
    # claim an unassigned instance / unassign one rita has
    ("rita", None, "claimed", "unassigned"),  # a candidate; the assignee
    ("rick", "rita", "refused", "refused"),   # a candidate, but someone has it
    ("sam", None, "refused", "refused"),      # not a candidate
    ("any", None, "claimed", "refused"),      # override: claims anything unassigned
    ("viewer", None, 403, 403),               # view-only staff
    ("boss", None, 403, "unassigned"),        # may assign, may not step
])
def test_claim_and_unassign_permission_matrix(people, review, who, has, claim, unassign):
    client = login(people[who])
    if has:
        assignment.claim(review, people[has])
    response = post(client, "claim", fresh(review))
    if claim == 403:
        assert response.status_code == 403
    else:
        assert response.status_code == 302
        assert (assignee(review) == who) == (claim == "claimed")
    assignment.assign(fresh(review), people["rita"], by=people["boss"])
    response = post(client, "unassign", fresh(review))
    if unassign == 403:
        assert response.status_code == 403 and assignee(review) == "rita"
    else:
        assert (assignee(review) is None) == (unassign == "unassigned")
        if unassign == "refused":
            assert "only they, or someone who may assign" in last_message(response)


@pytest.mark.parametrize("who", ["rita", "sam", "viewer", "any"])
def test_assign_needs_the_assign_permission(people, review, who):
    response = post(login(people[who]), "assign", review, user=people["rick"].pk)
    assert response.status_code == 403 and assignee(review) is None


@pytest.mark.parametrize("name", ["claim", "assign", "unassign"])
def test_gets_answer_405_and_forged_posts_need_csrf(people, review, name):
    client = login(people["boss"])
    assert client.get(url(name, review)).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(people["rita"])
    assert post(strict, name, review, user=people["rita"].pk).status_code == 403
    assert assignee(review) is None


@pytest.mark.parametrize("bad", ["not-a-uuid", "00000000-0000-0000-0000-000000000000",
                                 "%00", "x" * 300])
def test_malformed_instance_ids_are_404_not_500(people, bad):
    client = login(people["boss"])
    for name in ("claim", "assign", "unassign"):
        path = reverse("admin:flowr_instance_changelist") + f"{bad}/{name}/"
        assert client.post(path, {"user": "1"}).status_code in (302, 404)


def test_the_page_explains_refused_buttons(people, review):
    page = login(people["sam"]).get(url("change", review)).content.decode()
    assert "you are in none of these groups" in page
    assert "Only members of Reviewers may claim instances at &#x27;Review&#x27;" in page
    assert "needs the permission “Can assign instances to other users”" in page
    assignment.claim(review, people["rita"])
    page = login(people["rick"]).get(url("change", review)).content.decode()
    assert "already assigned to rita" in page and "only they, or someone" in page
    viewer = login(people["viewer"]).get(url("change", review)).content.decode()
    assert "Claiming needs the “Can step instances” permission." in viewer


def test_the_page_of_a_finished_instance_offers_no_assignment(people, review):
    engine.step(review, to="Done")
    page = login(people["rita"]).get(url("change", review)).content.decode()
    assert "its assignment no longer changes" in page and 'id="flowr-claim"' not in page


# -- the list ----------------------------------------------------------------------------

def test_list_shows_the_assignee_and_a_claim_button(people, machine, review):
    other = machine.start()
    engine.step(other, to="Review")
    assignment.claim(other, people["rick"])
    html = login(people["rita"]).get(LIST).content.decode()
    assert "column-assignee_column" in html and ">rick</span>" in html
    assert (f'form="flowr-step-{review.pk}" formaction="{url("claim", review)}"') in html
    assert f'id="flowr-step-{review.pk}"' in html  # the hidden row form the button submits
    assert f'formaction="{url("claim", other)}"' not in html
    html = login(people["sam"]).get(LIST).content.decode()
    assert 'class="grp-button flowr-step flowr-claim"' not in html


def test_assignee_filter(people, machine, review):
    mine, other, todo = (machine.start() for _ in range(3))
    for instance in (mine, other):
        engine.step(instance, to="Review")
    assignment.claim(mine, people["rita"])
    assignment.claim(other, people["rick"])
    client = login(people["rita"])

    def ids(query):
        response = client.get(LIST + query)
        assert response.status_code == 200
        return {i.pk for i in response.context["cl"].result_list}

    assert ids("?assignee=me") == {mine.pk}
    assert ids("?assignee=none") == {review.pk, todo.pk}
    assert ids("?assignee=mygroups") == {review.pk}
    assert ids(f"?assignee={people['rick'].pk}") == {other.pk}
    html = client.get(LIST).content.decode()
    assert "Claimable by my groups" in html and "Assigned to rick" in html
    assert ids("?assignee=mygroups") and not login(people["sam"]).get(
        LIST + "?assignee=mygroups").context["cl"].result_list


@pytest.mark.parametrize("bad", ["x", "-1", "1" * 40, "me%00", "<script>", "mygroups2"])
def test_hostile_assignee_filter_values_never_500(people, review, bad):
    response = login(people["rita"]).get(LIST, {"assignee": bad})
    assert response.status_code in (200, 302)


# -- bulk actions ---------------------------------------------------------------------------

def bulk(client, action, instances, **extra):
    return client.post(LIST, {"action": action,
                              "_selected_action": [str(i.pk) for i in instances], **extra})


def report_rows(client, response):
    assert response.status_code == 302, response.status_code
    return client.get(response["Location"]).context["report"].rows


def test_bulk_claim_reports_each_instance(people, machine, review):
    taken, todo = machine.start(), machine.start()
    engine.step(taken, to="Review")
    assignment.claim(taken, people["rick"])
    client = login(people["rita"])
    rows = {r.label: r for r in report_rows(client, bulk(client, "claim_selected",
                                                         [review, taken, todo]))}
    assert rows[review.label].ok and rows[review.label].after == "rita"
    assert not rows[taken.label].ok and "already assigned to rick" in rows[taken.label].reason
    assert rows[todo.label].ok  # Todo names no groups: anyone may claim
    assert assignee(review) == "rita" and assignee(taken) == "rick"
    assert LogEntry.objects.filter(change_message="Claimed.").count() == 2


def test_bulk_assign_chooses_a_user_then_reports(people, machine, review):
    todo = machine.start()
    client = login(people["boss"])
    page = bulk(client, "assign_selected", [review, todo])
    assert page.status_code == 200 and "Assign 2 selected instances" in page.content.decode()
    assert "rita (Reviewers)" in page.content.decode()
    rows = report_rows(client, bulk(client, "assign_selected", [review, todo], post="yes",
                                    user=people["sam"].pk))
    by_label = {r.label: r for r in rows}
    assert not by_label[review.label].ok and "sam is in none" in by_label[review.label].reason
    assert by_label[todo.label].ok and assignee(todo) == "sam" and assignee(review) is None
    again = bulk(client, "assign_selected", [review], post="yes", user="nonsense")
    assert again.status_code == 200 and assignee(review) is None  # the form shows the error


def test_bulk_unassign(people, machine, review):
    other = machine.start()
    engine.step(other, to="Review")
    assignment.claim(review, people["rita"])
    assignment.claim(other, people["rick"])
    client = login(people["rita"])
    rows = {r.label: r for r in report_rows(client, bulk(client, "unassign_selected",
                                                         [review, other]))}
    assert rows[review.label].ok and assignee(review) is None
    assert not rows[other.label].ok and assignee(other) == "rick"


@pytest.mark.parametrize("who, action", [
    ("viewer", "claim_selected"), ("viewer", "unassign_selected"),
    ("rita", "assign_selected"), ("boss", "claim_selected"),
])
def test_forged_bulk_actions_are_403(people, review, who, action):
    client = login(people[who])
    assert f'value="{action}"' not in client.get(LIST).content.decode()
    response = bulk(client, action, [review], post="yes", user=people["rita"].pk)
    assert response.status_code == 403
    assert assignee(review) is None and review.history.count() == 2


def test_bulk_actions_need_csrf(people, review):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(people["rita"])
    assert bulk(strict, "claim_selected", [review]).status_code == 403
    assert assignee(review) is None


def test_history_shows_assignments(people, review):
    assignment.claim(review, people["rita"])
    page = login(people["rita"]).get(url("change", review)).content.decode()
    assert "Assignment at</span> <strong>Review</strong>" in page and "Claimed." in page
    assert HistoryEntry.objects.filter(instance=review, kind="assign").count() == 1


# -- stepping: the same matrix on the page and in bulk ----------------------------------------

STEP_MATRIX = [
    # who, assignee, outcome of stepping Review → Done
    ("rita", None, "stepped"),      # a candidate, unassigned
    ("rita", "rita", "stepped"),    # the assignee
    ("rick", "rita", "refused"),    # a candidate, but someone has it
    ("sam", None, "refused"),       # not a candidate
    ("any", "rita", "stepped"),     # the override permission
    ("viewer", None, 403),          # view-only staff
    ("boss", None, 403),            # may assign, may not step
]


@pytest.mark.parametrize("who, has, outcome", STEP_MATRIX)
def test_step_permission_matrix_on_the_page(people, review, who, has, outcome):
    if has:
        assignment.claim(review, people[has])
    client = login(people[who])
    done = engine.compiled(review.version).resolve("Done")
    response = client.post(url("step", review), {"position": review.step_count, "to": done})
    if outcome == 403:
        assert response.status_code == 403
    elif outcome == "refused":
        reason = "Assigned to rita" if has else "Only members of Reviewers"
        assert reason in last_message(response)
        page = client.get(url("change", review)).content.decode()
        assert "disabled title=\"" + reason in page
    assert (fresh(review).state_name == "Done") == (outcome == "stepped")


@pytest.mark.parametrize("who, has, outcome", STEP_MATRIX)
def test_step_permission_matrix_in_bulk(people, review, who, has, outcome):
    if has:
        assignment.claim(review, people[has])
    client = login(people[who])
    response = bulk(client, "step_selected", [review], post="yes", target="Done",
                    **{f"position_{review.pk}": review.step_count})
    if outcome == 403:
        # The foundation's bulk step is not offered; Django refuses it before it runs.
        assert 'value="step_selected"' not in client.get(LIST).content.decode()
        assert response.status_code in (200, 302)
        assert "/report/" not in response.get("Location", "")
    elif outcome == "refused":
        [row] = report_rows(client, response)
        assert not row.ok and ("Assigned to rita" if has else "Only members") in row.reason
    else:
        assert report_rows(client, response)[0].ok
    assert (fresh(review).state_name == "Done") == (outcome == "stepped")
