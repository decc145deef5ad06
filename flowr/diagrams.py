"""Server-side SVG diagrams of machines, versions and rule sets (no network, no CDN).

grandalf computes a layered (Sugiyama) layout; this module only measures boxes,
picks back edges and writes the SVG. If grandalf fails, a breadth-first layered
grid is used instead, so a page never breaks because of its diagram.

    render_graph(nodes, edges, current=None, visited=(), marks=None) -> SafeString (an <svg>)
        nodes: list of (key, label, sublabel); edges: list of (parent_key, child_key);
        marks: {node key or (parent, child): "added" | "removed" | "changed"} (comparisons)
    machine_svg(machine_graph) -> SafeString        # flowr.builder.MachineGraph
    version_svg(version, current=None, visited=()) -> SafeString  # MachineVersion
    rule_set_svg(rule_set) -> SafeString            # flowr.rules.RuleSet
"""
import logging
import math
from collections import OrderedDict, defaultdict

from django.utils.html import escape
from django.utils.safestring import mark_safe

from . import graph as _graph

log = logging.getLogger(__name__)

NODE_H = 46
MIN_W, MAX_W = 96, 240
CHAR_W = 7.2  # average glyph width at 13px sans-serif
X_SPACE, Y_SPACE = 36, 64
MARGIN = 24
_CACHE = OrderedDict()
_CACHE_SIZE = 128

_STYLE = (
    ".fd-node rect{fill:#fff;stroke:#5b80b2;stroke-width:1.5}"
    ".fd-node.fd-visited rect{fill:#e1ecf7}"
    ".fd-node.fd-current rect{fill:#ffe27a;stroke:#b8860b;stroke-width:3}"
    ".fd-name{font:bold 13px sans-serif;fill:#222}"
    ".fd-sub{font:11px sans-serif;fill:#666}"
    ".fd-edge{fill:none;stroke:#555;stroke-width:1.4}"
    ".fd-back{stroke:#c0392b;stroke-dasharray:6 4}"
    ".fd-loop{stroke:#c0392b}"
    ".fd-node.fd-added rect{fill:#e3f4e1;stroke:#2e7d32;stroke-width:3}"
    ".fd-node.fd-removed rect{fill:#fde2e1;stroke:#c0392b;stroke-width:3;stroke-dasharray:6 3}"
    ".fd-node.fd-changed rect{fill:#fff4d6;stroke:#d39e00;stroke-width:3}"
    ".fd-edge.fd-added{stroke:#2e7d32;stroke-width:2.6}"
    ".fd-edge.fd-removed{stroke:#c0392b;stroke-width:2.6;stroke-dasharray:6 3}"
)


def _truncate(text, chars):
    text = str(text)
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "…"


def _box_width(label, sub):
    longest = max(len(str(label)) * 1.1, len(str(sub)) * 0.95)
    return int(min(MAX_W, max(MIN_W, longest * CHAR_W + 24)))


def _back_edges(order, edges):
    """Edges closing a cycle, found by depth-first search from the first node (the root)."""
    kids = _graph.children_map(edges)
    state, back = {}, set()
    for start in order:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(kids.get(start, ())))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(kids.get(child, ()))))
    return back


class _View:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.xy = (0, 0)


def _grandalf_layout(order, widths, edges, back):
    """Node centres and edge bend points {edge: [points]} from grandalf's Sugiyama layout."""
    from grandalf.graphs import Edge, Graph, Vertex
    from grandalf.layouts import SugiyamaLayout

    vertices = {key: Vertex(key) for key in order}
    for key, vertex in vertices.items():
        vertex.view = _View(widths[key], NODE_H)
    g_edges, by_edge = [], {}
    for parent, child in edges:
        edge = Edge(vertices[parent], vertices[child])
        g_edges.append(edge)
        by_edge[(parent, child)] = edge
    graph = Graph(list(vertices.values()), g_edges)
    centres, bends, offset = {}, {}, 0.0
    for component in graph.C:
        layout = SugiyamaLayout(component)
        layout.xspace, layout.yspace = X_SPACE, Y_SPACE
        inverted = [e for e in component.sE if (e.v[0].data, e.v[1].data) in back]
        layout.init_all(roots=[], inverted_edges=inverted)
        layout.draw(N=3)
        xs = [v.view.xy[0] - v.view.w / 2 for v in component.sV]
        shift = offset - min(xs)
        for v in component.sV:
            centres[v.data] = (v.view.xy[0] + shift, v.view.xy[1])
        for key, edge in by_edge.items():
            if edge in layout.ctrls:
                ctrl = layout.ctrls[edge]
                ranks = sorted(ctrl)[1:-1]
                points = [(ctrl[r].view.xy[0] + shift, ctrl[r].view.xy[1]) for r in ranks]
                bends[key] = points if key not in back else points[::-1]
        offset = max(centres[v.data][0] + v.view.w / 2 for v in component.sV) + X_SPACE * 2
    return centres, bends


def _fallback_layout(order, widths, edges):
    """Breadth-first layers as rows: used when grandalf cannot lay the graph out."""
    depth = _graph.layers(order[0], edges, order) if order else {}
    rows = defaultdict(list)
    for key in order:
        rows[depth[key]].append(key)
    centres = {}
    for row, keys in rows.items():
        x = 0.0
        for key in keys:
            centres[key] = (x + widths[key] / 2, row * (NODE_H + Y_SPACE))
            x += widths[key] + X_SPACE
    return centres, {}


def _clip(centre, width, toward):
    """The point where the line from a box centre toward `toward` leaves the box."""
    (cx, cy), (tx, ty) = centre, toward
    dx, dy = tx - cx, ty - cy
    if dx == 0 and dy == 0:
        return cx, cy
    hw, hh = width / 2, NODE_H / 2
    scale = min(hw / abs(dx) if dx else math.inf, hh / abs(dy) if dy else math.inf)
    return cx + dx * scale, cy + dy * scale


def _edge_path(parent, child, centres, widths, bends, is_back):
    """SVG path data for one edge, from the parent box border to the child box border."""
    points = list(bends.get((parent, child), ()))
    start, end = centres[parent], centres[child]
    if is_back and not points:
        # A back edge between adjacent layers: bow it sideways so it does not overlap.
        side = max(widths[parent], widths[child]) / 2 + 24
        mid_y = (start[1] + end[1]) / 2
        points = [(max(start[0], end[0]) + side, mid_y)]
    first = _clip(start, widths[parent], points[0] if points else end)
    last = _clip(end, widths[child], points[-1] if points else start)
    coords = [first, *points, last]
    if len(coords) == 2:
        return "M{:.1f},{:.1f} L{:.1f},{:.1f}".format(*coords[0], *coords[1])
    parts = ["M{:.1f},{:.1f}".format(*coords[0])]
    for i in range(1, len(coords) - 1):
        # Quadratic curve through each bend point, ending halfway to the next one.
        (x1, y1), (x2, y2) = coords[i], coords[i + 1]
        mx, my = ((x1 + x2) / 2, (y1 + y2) / 2) if i + 2 < len(coords) else (x2, y2)
        parts.append(f"Q{x1:.1f},{y1:.1f} {mx:.1f},{my:.1f}")
    return " ".join(parts)


def _loop_path(centre, width):
    x, y = centre[0] + width / 2, centre[1]
    return f"M{x:.1f},{y - 10:.1f} C{x + 34:.1f},{y - 26:.1f} {x + 34:.1f},{y + 26:.1f} " \
           f"{x:.1f},{y + 10:.1f}"


def _layout(order, widths, edges, back):
    try:
        return _grandalf_layout(order, widths, edges, back)
    except Exception:  # noqa: BLE001 - any layout failure falls back to a plain grid
        log.warning("grandalf layout failed; using the layered grid", exc_info=True)
        return _fallback_layout(order, widths, edges)


def _svg(nodes, edges, current, visited, marks):
    order = [key for key, _, _ in nodes]
    known = set(order)
    edges = [(p, c) for p, c in dict.fromkeys(edges) if p in known and c in known]
    loops = [(p, c) for p, c in edges if p == c]
    edges = [(p, c) for p, c in edges if p != c]
    widths = {key: _box_width(label, sub) for key, label, sub in nodes}
    back = _back_edges(order, edges)
    centres, bends = _layout(order, widths, edges, back) if order else ({}, {})
    xs = [x for x, _ in centres.values()] + [x for pts in bends.values() for x, _ in pts]
    ys = [y for _, y in centres.values()] + [y for pts in bends.values() for _, y in pts]
    min_x = min((centres[k][0] - widths[k] / 2 for k in order), default=0)
    max_x = max([centres[k][0] + widths[k] / 2 + 60 for k in order] + xs, default=0)
    min_y, max_y = min(ys, default=0) - NODE_H / 2, max(ys, default=0) + NODE_H / 2
    dx, dy = MARGIN - min_x, MARGIN - min_y
    centres = {k: (x + dx, y + dy) for k, (x, y) in centres.items()}
    bends = {k: [(x + dx, y + dy) for x, y in pts] for k, pts in bends.items()}
    width, height = int(max_x - min_x + 2 * MARGIN), int(max_y - min_y + 2 * MARGIN)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flowr-diagram" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<style>{_STYLE}</style>",
        '<defs><marker id="fd-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#555"/></marker><marker id="fd-arrow-back" viewBox="0 0 10 10" refX="10" '
        'refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#c0392b"/></marker></defs>',
    ]
    names = {key: label for key, label, _ in nodes}
    for parent, child in edges:
        is_back = (parent, child) in back
        path = _edge_path(parent, child, centres, widths, bends, is_back)
        parts.append(_edge_element(path, is_back, names[parent], names[child],
                                   mark=marks.get((parent, child))))
    for key, _ in loops:
        parts.append(_edge_element(_loop_path(centres[key], widths[key]), True,
                                   names[key], names[key], css="fd-loop",
                                   mark=marks.get((key, key))))
    for key, label, sub in nodes:
        parts.append(_node_element(key, label, sub, centres[key], widths[key], current, visited,
                                   marks.get(key)))
    parts.append("</svg>")
    return "".join(parts)


def _edge_element(path, is_back, parent, child, css="fd-back", mark=None):
    css_class = f"fd-edge {css}" if is_back else "fd-edge"
    marker = "fd-arrow-back" if is_back else "fd-arrow"
    kind = "loop back" if is_back else "transition"
    if mark:
        css_class, kind = f"{css_class} fd-{mark}", f"{kind}, {mark}"
    return (f'<path class="{css_class}" d="{path}" marker-end="url(#{marker})">'
            f"<title>{escape(parent)} → {escape(child)} ({kind})</title></path>")


def _node_element(key, label, sub, centre, width, current, visited, mark=None):
    css = "fd-node"
    if mark:
        css += f" fd-{mark}"
    elif key == current:
        css += " fd-current"
    elif key in visited:
        css += " fd-visited"
    x, y = centre[0] - width / 2, centre[1] - NODE_H / 2
    chars = int((width - 16) / CHAR_W)
    return (f'<g class="{css}" data-key="{escape(key)}"><title>{escape(label)} ({escape(sub)})'
            f'</title><rect x="{x:.1f}" y="{y:.1f}" width="{width}" height="{NODE_H}" rx="7"/>'
            f'<text class="fd-name" x="{centre[0]:.1f}" y="{centre[1] - 3:.1f}" '
            f'text-anchor="middle">{escape(_truncate(label, int(chars / 1.1)))}</text>'
            f'<text class="fd-sub" x="{centre[0]:.1f}" y="{centre[1] + 13:.1f}" '
            f'text-anchor="middle">{escape(_truncate(sub, int(chars * 1.1)))}</text></g>')


def render_graph(nodes, edges, current=None, visited=(), marks=None):
    """An inline, scrollable <svg> of a directed graph; the first node is drawn as the root.

    `marks` colours nodes (by key) and edges (by (parent, child)) as "added", "removed"
    or "changed", for comparisons of two versions.
    """
    nodes = [(str(k), str(label), str(sub or "")) for k, label, sub in nodes]
    edges = [(str(p), str(c)) for p, c in edges]
    visited = frozenset(str(v) for v in visited or ())
    current = None if current is None else str(current)
    marks = {(tuple(map(str, k)) if isinstance(k, tuple) else str(k)): v
             for k, v in (marks or {}).items() if v in ("added", "removed", "changed")}
    cache_key = (tuple(nodes), tuple(edges), current, visited,
                 tuple(sorted(marks.items(), key=repr)))
    svg = _CACHE.get(cache_key)
    if svg is None:
        svg = _svg(nodes, edges, current, visited, marks)
        _CACHE[cache_key] = svg
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(cache_key)
    return mark_safe(f'<div class="flowr-diagram-scroll" style="overflow:auto;max-width:100%;'
                     f'max-height:75vh;background:#fafafa;border:1px solid #ddd;'
                     f'border-radius:4px">{svg}</div>')


def _rule_label(rule_set, rule_key):
    try:
        return rule_set.get(rule_key).get_display_name()
    except Exception:  # noqa: BLE001 - a rule removed from code is still drawn
        return rule_key.rpartition(".")[2]


def machine_svg(machine_graph):
    """The diagram of a machine's current (draft) graph, root first."""
    states = sorted(machine_graph.states, key=lambda s: not s.is_root)
    try:
        rule_set = machine_graph.rule_set
        nodes = [(s.key, s.name, _rule_label(rule_set, s.rule_key)) for s in states]
    except Exception:  # noqa: BLE001 - unregistered rule set: show the raw rule keys
        nodes = [(s.key, s.name, s.rule_key) for s in states]
    return render_graph(nodes, machine_graph.edges)


def version_svg(version, current=None, visited=()):
    """The diagram of a published version, with the current state and visited states marked."""
    from .rules import get_rule_set

    graph = version.graph
    order = [graph.root] + [k for k in graph.names if k != graph.root]
    try:
        rule_set = get_rule_set(graph.rule_set_key)
    except Exception:  # noqa: BLE001 - unregistered rule set: short rule names
        rule_set = None
    nodes = [(k, graph.names[k], _rule_label(rule_set, graph.rules[k]) if rule_set
              else graph.rules[k].rpartition(".")[2]) for k in order]
    return render_graph(nodes, graph.edges, current=current, visited=visited)


def rule_set_svg(rule_set):
    """The diagram of a rule set: rules as boxes, allowed children as arrows."""
    keys = [rule_set.root_key] + [k for k in rule_set.rule_keys() if k != rule_set.root_key]
    nodes = []
    for key in keys:
        flags = ["root"] if key == rule_set.root_key else []
        if rule_set.allows_multiple(key):
            flags.append("multiple paths")
        sub = key.rpartition(".")[2] + (f" · {', '.join(flags)}" if flags else "")
        nodes.append((key, rule_set.get(key).get_display_name(), sub))
    edges = [(k, c) for k in keys for c in rule_set.children_keys(k)]
    return render_graph(nodes, edges)


def definition_svg(definition, marks=None):
    """The diagram of a version definition (flowr.compiled), root first, with `marks`."""
    from .rules import get_rule_set

    try:
        rule_set = get_rule_set(definition["rule_set"])
    except Exception:  # noqa: BLE001 - unregistered rule set: short rule names
        rule_set = None
    states = sorted(definition["states"], key=lambda s: s["key"] != definition.get("root"))
    nodes = [(s["key"], s["name"], _rule_label(rule_set, s["rule"]) if rule_set
              else s["rule"].rpartition(".")[2]) for s in states]
    return render_graph(nodes, [tuple(t) for t in definition["transitions"]], marks=marks)
