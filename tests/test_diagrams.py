"""Diagrams: grandalf layout to inline SVG, marks, back edges, size, fallback, cache."""
import re

import pytest

from flowr import builder, diagrams, layout
from flowr.rules import get_rule_set

LOCAL_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture(autouse=True)
def _empty_cache(settings):
    """Each test lays out afresh, with a memory cache standing in for the shared one."""
    from django.core.cache import cache

    settings.CACHES = LOCAL_CACHE
    cache.clear()
    layout.clear_local()
    yield
    layout.clear_local()


def boxes(svg):
    """{node key: (x, y, width, height)} read back from the SVG."""
    found = re.findall(r'<g class="[^"]*" data-key="([^"]+)"[^>]*><title>.*?</title>'
                       r'<rect x="([\d.-]+)" y="([\d.-]+)" width="(\d+)" height="(\d+)"', svg)
    return {k: tuple(float(v) for v in rest) for k, *rest in found}


def overlap(a, b):
    return not (a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or
                a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1])


EXAMPLE_NODES = [("a", "A", "flowr_example.A"), ("c", "C", "C"), ("d", "D", "D"),
                 ("e", "E", "E")]
EXAMPLE_EDGES = [("a", "c"), ("c", "d"), ("c", "e"), ("e", "a")]


def test_render_graph_draws_every_node_with_name_rule_and_arrows():
    svg = str(diagrams.render_graph(EXAMPLE_NODES, EXAMPLE_EDGES))
    assert "<svg" in svg and "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert set(boxes(svg)) == {"a", "c", "d", "e"}
    assert ">A</text>" in svg and ">flowr_example.A</text>" in svg
    assert svg.count('marker-end="url(#fd-arrow)"') == 3  # forward edges
    assert svg.count('class="fd-edge fd-back"') == 1  # E→A closes the cycle
    assert "<title>E → A (loop back)</title>" in svg


def test_layout_is_layered_top_down_without_overlaps():
    b = boxes(str(diagrams.render_graph(EXAMPLE_NODES, EXAMPLE_EDGES)))
    assert b["a"][1] < b["c"][1] < b["d"][1]
    assert b["d"][1] == b["e"][1]
    keys = list(b)
    assert not any(overlap(b[x], b[y]) for i, x in enumerate(keys) for y in keys[i + 1:])


def test_current_and_visited_are_marked():
    svg = str(diagrams.render_graph(EXAMPLE_NODES, EXAMPLE_EDGES, current="c", visited={"a"}))
    assert '<g class="fd-node fd-current" data-key="c">' in svg
    assert '<g class="fd-node fd-visited" data-key="a">' in svg
    assert '<g class="fd-node" data-key="d">' in svg


def test_labels_are_escaped():
    svg = str(diagrams.render_graph([("x", "<script>", "a&b")], []))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a&amp;b" in svg


def test_self_loop_and_unknown_edges_do_not_break_it():
    svg = str(diagrams.render_graph([("x", "X", "r")], [("x", "x"), ("x", "nowhere")]))
    assert 'class="fd-edge fd-loop"' in svg
    assert set(boxes(svg)) == {"x"}


def test_empty_graph_renders():
    assert "<svg" in str(diagrams.render_graph([], []))


def test_fifty_states_stay_readable_and_scroll():
    nodes = [(str(i), f"State {i}", "rule.Step") for i in range(50)]
    edges = [(str(i // 2), str(i)) for i in range(1, 50)] + [("49", "0"), ("30", "3")]
    svg = str(diagrams.render_graph(nodes, edges))
    b = boxes(svg)
    assert len(b) == 50
    assert all(width >= diagrams.MIN_W for _, _, width, _ in b.values())  # never shrunk
    keys = list(b)
    assert not any(overlap(b[x], b[y]) for i, x in enumerate(keys) for y in keys[i + 1:])
    assert "overflow:auto" in svg  # the wrapper scrolls instead of shrinking the text
    width = int(re.search(r'<svg[^>]* width="(\d+)"', svg).group(1))
    assert width >= max(x + w for x, _, w, _ in b.values())


def test_falls_back_to_a_grid_when_grandalf_fails(monkeypatch, caplog):
    def broken(*args):
        raise RuntimeError("layout exploded")

    monkeypatch.setattr(layout, "_grandalf_layout", broken)
    svg = str(diagrams.render_graph(EXAMPLE_NODES, EXAMPLE_EDGES))
    b = boxes(svg)
    assert set(b) == {"a", "c", "d", "e"}
    assert b["a"][1] < b["c"][1] < b["d"][1]
    assert "grandalf layout failed" in caplog.text


def test_grandalf_is_used_by_default(monkeypatch):
    def no_fallback(*args):
        raise AssertionError("fell back")

    monkeypatch.setattr(layout, "_fallback_layout", no_fallback)
    nodes = [(str(i), f"S{i}", "r") for i in range(200)]
    edges = [(str(i // 3), str(i)) for i in range(1, 200)] + [("150", "2")]
    assert len(boxes(str(diagrams.render_graph(nodes, edges)))) == 200


@pytest.mark.django_db
def test_machine_svg_puts_root_first_with_rule_names(example_machine):
    graph = builder.MachineGraph.load(example_machine)
    svg = str(diagrams.machine_svg(graph))
    root = example_machine.root_state
    b = boxes(svg)
    assert b[root.key][1] == min(y for _, y, _, _ in b.values())
    assert len(b) == 4 and "fd-back" in svg


@pytest.mark.django_db
def test_version_svg_marks_current_and_visited(example_machine):
    version = example_machine.latest_version()
    c = example_machine.states.get(name="C")
    svg = str(diagrams.version_svg(version, current=c.key,
                                   visited=[example_machine.root_state.key]))
    assert f'class="fd-node fd-current" data-key="{c.key}"' in svg
    assert f'class="fd-node fd-visited" data-key="{example_machine.root_state.key}"' in svg


def test_rule_set_svg_shows_rules_flags_and_cycles():
    svg = str(diagrams.rule_set_svg(get_rule_set("support")))
    assert ">Waiting on customer</text>" in svg
    assert "New · root" in svg and "Open · multiple paths" in svg
    assert "fd-back" in svg  # Waiting→Open and Resolved→Open loop back


@pytest.mark.django_db
def test_version_svg_survives_an_unregistered_rule_set(example_machine):
    from flowr.rules import unregister

    unregister("flowr_example")
    svg = str(diagrams.version_svg(example_machine.latest_version()))
    assert len(boxes(svg)) == 4 and ">D</text>" in svg
