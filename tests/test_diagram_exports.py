"""Diagram downloads: SVG, Mermaid stateDiagram-v2 and Graphviz DOT of machines, versions
and instances; GETs that change nothing, behind the view permission."""
import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from flowr import builder, engine
from flowr.diagram_export import dot, mermaid

pytestmark = pytest.mark.django_db

NODES = [("a", 'Say "hi"; #1', "rule.A"), ("c", "C", "C"), ("d", "D", "rule.D")]
EDGES = [("a", "c"), ("c", "d"), ("c", "a")]


def test_mermaid_quotes_labels_and_marks_start_end_and_current():
    text = mermaid(NODES, EDGES, current="c", title="Orders: big")
    assert text.startswith('---\ntitle: "Orders: big"\n---\nstateDiagram-v2\n')
    assert '    state "Say #quot;hi#quot;#59; #35;1 (rule.A)" as s_a\n' in text
    assert '    state "C" as s_c\n' in text  # a rule named like its state is said once
    for line in ["[*] --> s_a", "s_a --> s_c", "s_c --> s_a", "s_d --> [*]", "class s_c current"]:
        assert f"    {line}\n" in text


def test_mermaid_ids_stay_unique():
    text = mermaid([("a-b", "X", ""), ("a_b", "Y", "")], [])
    assert 'as s_a_b\n' in text and 'as s_a_b_2\n' in text


def test_dot_escapes_and_highlights_the_current_state():
    text = dot(NODES, EDGES, current="c", title='The "big" one')
    assert text.startswith('digraph "The \\"big\\" one" {')
    assert '"a" [label="Say \\"hi\\"; #1\\nrule.A"];' in text
    assert '"c" [label="C", fillcolor="#ffe27a", penwidth=3];' in text
    assert '"__start__" -> "a";' in text and '"c" -> "a";' in text


def download(client, url):
    response = client.get(url)
    return response, response.content.decode() if response.status_code == 200 else ""


def test_machine_version_and_instance_downloads(staff_client, example_machine):
    builder.update_state(example_machine.states.get(name="D"), name="Done")
    machine_url = reverse("admin:flowr_machine_diagram", args=[example_machine.pk, "mermaid"])
    response, text = download(staff_client, machine_url)
    assert response["Content-Disposition"] == 'attachment; filename="Example-draft.mmd"'
    assert 'state "Done (D)"' in text
    response, text = download(staff_client, reverse("admin:flowr_machine_version_diagram",
                                                    args=[example_machine.pk, 1, "dot"]))
    assert response["Content-Type"].startswith("text/vnd.graphviz")
    assert 'label="D"' in text and "Done" not in text  # version 1, as published
    instance = engine.start(example_machine)
    response, text = download(staff_client, reverse("admin:flowr_instance_diagram",
                                                    args=[instance.pk, "svg"]))
    assert response["Content-Type"] == "image/svg+xml"
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns=')
    assert f'class="fd-node fd-current" data-key="{instance.state_key}"' in text
    assert "tabindex" not in text


def test_machine_page_links_its_downloads(staff_client, example_machine):
    html = staff_client.get(reverse("admin:flowr_machine_change",
                                    args=[example_machine.pk])).content.decode()
    for fmt in ("svg", "mermaid", "dot"):
        assert reverse("admin:flowr_machine_diagram", args=[example_machine.pk, fmt]) in html


@pytest.mark.parametrize("name, args", [
    ("admin:flowr_machine_diagram", ["pdf"]),
    ("admin:flowr_machine_version_diagram", [7, "svg"]),
])
def test_unknown_formats_and_versions_are_404(staff_client, example_machine, name, args):
    assert staff_client.get(reverse(name, args=[example_machine.pk, *args])).status_code == 404


def test_unknown_machine_and_instance_are_404(staff_client):
    import uuid

    assert staff_client.get("/admin/flowr/machine/999/diagram/svg/").status_code == 404
    assert staff_client.get("/admin/flowr/machine/x%00y/diagram/svg/").status_code == 404
    url = reverse("admin:flowr_instance_diagram", args=[uuid.uuid4(), "svg"])
    assert staff_client.get(url).status_code == 404


def test_downloads_need_view_permission_and_change_nothing(django_user_model, example_machine):
    instance = engine.start(example_machine)
    urls = [reverse("admin:flowr_machine_diagram", args=[example_machine.pk, "svg"]),
            reverse("admin:flowr_machine_version_diagram", args=[example_machine.pk, 1, "svg"]),
            reverse("admin:flowr_machine_version", args=[example_machine.pk, 1]),
            reverse("admin:flowr_instance_diagram", args=[instance.pk, "svg"])]
    nobody = django_user_model.objects.create_user("nobody", password="pw", is_staff=True)
    client = Client()
    client.force_login(nobody)
    assert [client.get(url).status_code for url in urls] == [403] * 4
    nobody.user_permissions.add(*Permission.objects.filter(
        codename__in=["view_machine", "view_instance"]))
    nobody = django_user_model.objects.get(pk=nobody.pk)
    client.force_login(nobody)
    assert [client.get(url).status_code for url in urls] == [200] * 4
    assert [client.post(url).status_code for url in urls] == [405] * 4


def test_instance_page_links_its_downloads(staff_client, example_machine):
    instance = engine.start(example_machine)
    html = staff_client.get(reverse("admin:flowr_instance_change",
                                    args=[instance.pk])).content.decode()
    for fmt in ("svg", "mermaid", "dot"):
        assert reverse("admin:flowr_instance_diagram", args=[instance.pk, fmt]) in html
