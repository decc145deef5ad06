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


# -- layout: shared, once per shape, readable at scale -----------------------------------

def test_layout_is_shared_through_the_cache_and_reused_after_a_rename(monkeypatch):
    calls = []
    real = layout.layout
    monkeypatch.setattr(layout, "layout", lambda *a: calls.append(1) or real(*a))
    diagrams.render_graph(EXAMPLE_NODES, EXAMPLE_EDGES)
    layout.clear_local()  # another worker: nothing in its memory, the cache has it
    diagrams.render_graph(EXAMPLE_NODES, EXAMPLE_EDGES, current="c")
    renamed = [("a", "B", "flowr_example.A"), *EXAMPLE_NODES[1:]]  # same box widths
    svg = str(diagrams.render_graph(renamed, EXAMPLE_EDGES))
    assert len(calls) == 1 and ">B</text>" in svg
    diagrams.render_graph(EXAMPLE_NODES, EXAMPLE_EDGES + [("d", "a")])
    assert len(calls) == 2


def test_a_cache_that_fails_only_costs_a_layout(monkeypatch, caplog):
    class Down:
        def get(self, *args, **kwargs):
            raise ConnectionError("cache down")

        set = get

    monkeypatch.setattr(layout, "caches", {"default": Down()})
    assert len(boxes(str(diagrams.render_graph(EXAMPLE_NODES, EXAMPLE_EDGES)))) == 4
    assert "layout cache unavailable" in caplog.text


def test_long_names_wrap_inside_their_box_with_the_full_name_on_hover():
    long = "Waiting for the second signature of the regional manager"
    word = "X" * 80
    svg = str(diagrams.render_graph([("a", long, "rule.A"), ("b", word, "")], [("a", "b")]))
    b = boxes(svg)
    assert all(w <= diagrams.MAX_W for _, _, w, _ in b.values())
    assert f"<title>{long} (rule.A)</title>" in svg and f"<title>{word}</title>" in svg
    lines = re.findall(r'<text class="fd-name"[^>]*>([^<]*)</text>', svg)
    assert len(lines) == 4 and lines[1].endswith("…") and lines[3].endswith("…")
    assert all(len(line) * diagrams.CHAR_W * diagrams.NAME_SCALE <= diagrams.MAX_W
               for line in lines)


def test_a_name_equal_to_its_rule_is_not_repeated():
    svg = str(diagrams.render_graph([("a", "A", "A"), ("b", "B", "Other")], []))
    assert svg.count(">A</text>") == 1 and ">Other</text>" in svg


def test_loops_back_run_beside_the_boxes_without_dummy_vertices():
    keys = [str(i) for i in range(300)]
    edges = list(zip(keys, keys[1:], strict=False)) + [(k, "0") for k in keys[10::10]]
    found = layout.layout(keys, dict.fromkeys(keys, 100), edges)
    back = [e for e in found["edges"] if e[3] == "back"]
    assert len(back) == 29
    rightmost_box = max(x + 50 for x, _ in found["nodes"].values())
    for _, _, path, _ in back:
        lane = float(path.split()[2][1:].split(",")[0])
        assert lane > rightmost_box  # beside every box it passes
    assert found["size"][0] >= max(float(p.split()[2][1:].split(",")[0]) for *_, p, _ in back)


def test_interactive_diagram_marks_boxes_and_arrows_for_the_keyboard():
    svg = str(diagrams.render_graph(EXAMPLE_NODES, EXAMPLE_EDGES, interactive=True,
                                    counts={"c": 3}, count_url=lambda k: f"/list?state={k}"))
    assert 'data-interactive="1"' in svg
    assert svg.count('tabindex="0" role="button"') == 4 + 4  # boxes and arrows
    assert '<g class="fd-link" data-parent="e" data-child="a"' in svg
    assert '<a class="fd-count" href="/list?state=c" aria-label="3 active instances in C">' in svg
    assert 'class="fd-node fd-load-4" data-key="c"' in svg
