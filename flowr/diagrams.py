"""Server-side SVG diagrams of machines, versions and rule sets (no network, no CDN).

flowr.layout places the boxes and arrows (grandalf, cached per graph shape); this module
measures and labels the boxes, marks them and writes the SVG.

    render_graph(nodes, edges, current=None, visited=(), counts=None, count_url=None,
                 interactive=False, hints=None) -> SafeString (a scrollable <div> + <svg>)
        nodes: list of (key, label, sublabel); edges: list of (parent_key, child_key)
        counts: {key: active instances}, drawn as a badge linking to count_url(key)
        hints: {key: text} added to a box's tooltip (e.g. its options in words)
        marks: {key or (parent, child): "added" | "removed" | "changed"} (comparisons)
    svg_document(nodes, edges, current=None, visited=()) -> str (a standalone .svg file)
    machine_nodes(machine_graph), version_nodes(version), rule_set_nodes(rule_set)
        -> (nodes, edges) of a draft machine, a published version, a rule set
    machine_svg(machine_graph, **marks), version_svg(version, **marks), rule_set_svg(rule_set),
    definition_svg(definition, marks=None)  (a version definition, e.g. in a comparison)
"""
import html
import math

from django.utils.safestring import mark_safe

from .layout import NODE_H, cached_layout


def escape(value):
    """django.utils.html.escape() without its lazy-string wrapper: thousands of calls a page."""
    return html.escape(str(value))


MIN_W, MAX_W = 96, 240
CHAR_W = 7.2  # average glyph width at 13px sans-serif
NAME_SCALE = 1.1  # bold names are wider than the average glyph
LOAD_LEVELS = 4  # shades of a box by how many instances sit in it

STYLE = (
    ".fd-node rect{fill:#fff;stroke:#5b80b2;stroke-width:1.5}"
    ".fd-node.fd-visited rect{fill:#e1ecf7}"
    ".fd-node.fd-current rect{fill:#ffe27a;stroke:#b8860b;stroke-width:3}"
    ".fd-node.fd-load-1 rect{fill:#eef6ee}.fd-node.fd-load-2 rect{fill:#d5ecd5}"
    ".fd-node.fd-load-3 rect{fill:#b4dcb4}.fd-node.fd-load-4 rect{fill:#8fca8f}"
    ".fd-name{font:bold 13px sans-serif;fill:#222}"
    ".fd-sub{font:11px sans-serif;fill:#666}"
    ".fd-edge{fill:none;stroke:#555;stroke-width:1.4}"
    ".fd-back{stroke:#c0392b;stroke-dasharray:6 4}"
    ".fd-loop{stroke:#c0392b}"
    ".fd-count rect{fill:#2e7d32;stroke:#fff;stroke-width:1}"
    ".fd-count text{font:bold 11px sans-serif;fill:#fff}"
    ".fd-count:hover rect,.fd-count:focus rect{fill:#1b5e20}"
    "[data-key],.fd-link{cursor:pointer;outline:none}"
    ".fd-hit{fill:none;stroke:transparent;stroke-width:12}"
    ".fd-link:hover .fd-edge,.fd-link:focus .fd-edge{stroke-width:3}"
    ".fd-link.fd-selected .fd-edge{stroke:#2987a6;stroke-width:3.5}"
    ".fd-node:hover rect,.fd-node:focus rect{stroke:#2987a6;stroke-width:2.5}"
    ".fd-node.fd-selected rect{stroke:#2987a6;stroke-width:4}"
    ".fd-node.fd-added rect{fill:#e3f4e1;stroke:#2e7d32;stroke-width:3}"
    ".fd-node.fd-removed rect{fill:#fde2e1;stroke:#c0392b;stroke-width:3;stroke-dasharray:6 3}"
    ".fd-node.fd-changed rect{fill:#fff4d6;stroke:#d39e00;stroke-width:3}"
    ".fd-edge.fd-added{stroke:#2e7d32;stroke-width:2.6}"
    ".fd-edge.fd-removed{stroke:#c0392b;stroke-width:2.6;stroke-dasharray:6 3}"
)
MARKS = ("added", "removed", "changed")
# Arrowheads sized in user units: a selected (thicker) arrow keeps its head's size.
_DEFS = (
    '<defs><marker id="fd-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="11" '
    'markerHeight="11" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
    '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker><marker id="fd-arrow-back" '
    'viewBox="0 0 10 10" refX="10" refY="5" markerWidth="11" markerHeight="11" '
    'markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
    '<path d="M0,0 L10,5 L0,10 z" fill="#c0392b"/></marker></defs>'
)


# -- labels -------------------------------------------------------------------------------

def _box_width(label, sub):
    longest = max(len(label) * NAME_SCALE, len(sub) * 0.95)
    return int(min(MAX_W, max(MIN_W, longest * CHAR_W + 24)))


def _cut(text, chars):
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "…"


def _lines(label, chars):
    """The name in one or two lines of at most `chars` (words longer than a line are broken;
    the second line ends with … when the name does not fit)."""
    if len(label) <= chars:
        return [label]
    words, first = label.split(" "), ""
    while words and len(f"{first} {words[0]}".strip()) <= chars:
        first = f"{first} {words.pop(0)}".strip()
    if not first:  # one long word: break it
        return [label[:chars], _cut(label[chars:], chars)]
    return [first, _cut(" ".join(words), chars)]


# -- SVG elements -------------------------------------------------------------------------

def _node_texts(label, sub, cx, cy, width):
    chars = int((width - 14) / (CHAR_W * NAME_SCALE))
    lines = _lines(label, chars)
    top = cy + 4 - 7 * (len(lines) - 1) - (7 if sub else 0)
    parts = [f'<text class="fd-name" x="{cx:.1f}" y="{top + 14 * i:.1f}" '
             f'text-anchor="middle">{escape(line)}</text>' for i, line in enumerate(lines)]
    if sub:
        parts.append(f'<text class="fd-sub" x="{cx:.1f}" y="{top + 14 * len(lines):.1f}" '
                     f'text-anchor="middle">{escape(_cut(sub, int(chars * 1.15)))}</text>')
    return "".join(parts)


def _badge(count, url, x, y, label):
    text = str(count)
    w = 10 + 7 * len(text)
    title = f"{count} active instance{'s' if count != 1 else ''} in {label}"
    body = (f'<rect x="{x - w / 2:.1f}" y="{y - 9:.1f}" width="{w}" height="18" rx="9"/>'
            f'<text x="{x:.1f}" y="{y + 4:.1f}" text-anchor="middle">{text}</text>'
            f"<title>{escape(title)}</title>")
    if url:
        return (f'<a class="fd-count" href="{escape(url)}" aria-label="{escape(title)}">'
                f"{body}</a>")
    return f'<g class="fd-count">{body}</g>'


def _node(key, label, sub, centre, width, marks):
    css = "fd-node"
    if key in marks.diff:
        css += f" fd-{marks.diff[key]}"
    elif key == marks.current:
        css += " fd-current"
    elif key in marks.visited:
        css += " fd-visited"
    count = marks.counts.get(key, 0)
    if count and marks.peak:
        css += f" fd-load-{math.ceil(LOAD_LEVELS * count / marks.peak)}"
    cx, cy = centre
    x, y = cx - width / 2, cy - NODE_H / 2
    hint = f"{label} ({sub})" if sub else label
    if key in marks.hints:
        hint += f" · {marks.hints[key]}"
    extra = (f' tabindex="0" role="button" aria-label="{escape(label)}: show actions"'
             if marks.interactive else "")
    out = (f'<g class="{css}" data-key="{escape(key)}"{extra}><title>{escape(hint)}</title>'
           f'<rect x="{x:.1f}" y="{y:.1f}" width="{width}" height="{NODE_H}" rx="7"/>'
           f"{_node_texts(label, sub, cx, cy, width)}</g>")
    if count:
        url = marks.count_url(key) if marks.count_url else None
        out += _badge(count, url, x + width - 4, y + 1, label)
    return out


def _edge(parent, child, path, kind, names, marks):
    css = {"back": "fd-edge fd-back", "loop": "fd-edge fd-loop"}.get(kind, "fd-edge")
    marker = "fd-arrow-back" if kind else "fd-arrow"
    what = "loop back" if kind else "transition"
    mark = marks.diff.get((parent, child))
    if mark:
        css, what = f"{css} fd-{mark}", f"{what}, {mark}"
    title = f"{names[parent]} → {names[child]} ({what})"
    interactive = marks.interactive
    line = f'<path class="{css}" d="{path}" marker-end="url(#{marker})">'
    if not interactive:
        return f"{line}<title>{escape(title)}</title></path>"
    return (f'<g class="fd-link" data-parent="{escape(parent)}" data-child="{escape(child)}" '
            f'tabindex="0" role="button" aria-label="{escape(title)}"><title>{escape(title)}'
            f'</title><path class="fd-hit" d="{path}"/>{line}</path></g>')


_SCROLL = ("position:relative;overflow:auto;max-width:100%;max-height:75vh;background:#fafafa;"
           "border:1px solid #ddd;border-radius:4px")


class _Marks:
    """What is drawn on top of the layout: current/visited states, counts, interactivity."""

    def __init__(self, current=None, visited=(), counts=None, count_url=None,
                 interactive=False, hints=None, marks=None):
        self.current = None if current is None else str(current)
        self.visited = frozenset(str(v) for v in visited or ())
        self.counts = {str(k): v for k, v in (counts or {}).items() if v}
        self.peak = max(self.counts.values(), default=0)
        self.count_url, self.interactive = count_url, interactive
        self.hints = {str(k): v for k, v in (hints or {}).items() if v}
        # Comparisons: {key or (parent, child): "added" | "removed" | "changed"}.
        self.diff = {(tuple(map(str, k)) if isinstance(k, tuple) else str(k)): v
                     for k, v in (marks or {}).items() if v in MARKS}


def _svg(nodes, edges, marks, attrs=""):
    order = [key for key, _, _ in nodes]
    widths = {key: _box_width(label, sub) for key, label, sub in nodes}
    geometry = cached_layout(order, widths, edges)
    width, height = geometry["size"]
    names = {key: label for key, label, _ in nodes}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="flowr-diagram" role="img" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}"{attrs}>',
             f"<style>{STYLE}</style>", _DEFS]
    parts += [_edge(p, c, path, kind, names, marks)
              for p, c, path, kind in geometry["edges"]]
    centres = geometry["nodes"]
    parts += [_node(key, label, sub, centres[key], widths[key], marks)
              for key, label, sub in nodes]
    parts.append("</svg>")
    return "".join(parts)


def _clean(nodes, edges):
    nodes = [(str(k), str(label), str(sub or "")) for k, label, sub in nodes]
    # A sublabel equal to the name (state "A" of rule "A") says nothing: drop it.
    nodes = [(k, label, "" if sub == label else sub) for k, label, sub in nodes]
    known = {k for k, _, _ in nodes}
    edges = [(str(p), str(c)) for p, c in dict.fromkeys(edges)]
    return nodes, [(p, c) for p, c in edges if p in known and c in known]


def render_graph(nodes, edges, current=None, visited=(), counts=None, count_url=None,
                 interactive=False, hints=None, marks=None):
    """An inline, scrollable <svg> of a directed graph; the first node is drawn as the root.

    `marks` colours nodes (by key) and edges (by (parent, child)) as "added", "removed"
    or "changed", for comparisons of two versions.
    """
    nodes, edges = _clean(nodes, edges)
    marks = _Marks(current, visited, counts, count_url, interactive, hints, marks)
    attrs = ' data-interactive="1"' if interactive else ""
    return mark_safe(f'<div class="flowr-diagram-scroll" style="{_SCROLL}">'
                     f"{_svg(nodes, edges, marks, attrs)}</div>")


def svg_document(nodes, edges, current=None, visited=()):
    """A standalone SVG file of the graph (for download)."""
    nodes, edges = _clean(nodes, edges)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + _svg(nodes, edges, _Marks(current, visited)) + "\n")


# -- what machines, versions and rule sets draw ----------------------------------------------

def _rule_label(rule_set, rule_key):
    try:
        return rule_set.get(rule_key).get_display_name()
    except Exception:  # noqa: BLE001 - a rule removed from code is still drawn
        return rule_key.rpartition(".")[2]


def machine_nodes(machine_graph):
    """(nodes, edges) of a machine's current (draft) graph, root first."""
    states = sorted(machine_graph.states, key=lambda s: not s.is_root)
    try:
        rule_set = machine_graph.rule_set
        nodes = [(s.key, s.name, _rule_label(rule_set, s.rule_key)) for s in states]
    except Exception:  # noqa: BLE001 - unregistered rule set: show the raw rule keys
        nodes = [(s.key, s.name, s.rule_key) for s in states]
    return nodes, machine_graph.edges


def version_nodes(version):
    """(nodes, edges) of a published version, root first."""
    from .rules import get_rule_set

    graph = version.graph
    order = [graph.root] + [k for k in graph.names if k != graph.root]
    try:
        rule_set = get_rule_set(graph.rule_set_key)
    except Exception:  # noqa: BLE001 - unregistered rule set: short rule names
        rule_set = None
    nodes = [(k, graph.names[k], _rule_label(rule_set, graph.rules[k]) if rule_set
              else graph.rules[k].rpartition(".")[2]) for k in order]
    return nodes, graph.edges


def rule_set_nodes(rule_set):
    """(nodes, edges) of a rule set: rules as boxes, allowed children as arrows."""
    keys = [rule_set.root_key] + [k for k in rule_set.rule_keys() if k != rule_set.root_key]
    nodes = []
    for key in keys:
        flags = ["root"] if key == rule_set.root_key else []
        if rule_set.allows_multiple(key):
            flags.append("multiple paths")
        sub = key.rpartition(".")[2] + (f" · {', '.join(flags)}" if flags else "")
        nodes.append((key, rule_set.get(key).get_display_name(), sub))
    return nodes, [(k, c) for k in keys for c in rule_set.children_keys(k)]


def machine_svg(machine_graph, **marks):
    """The diagram of a machine's current (draft) graph."""
    return render_graph(*machine_nodes(machine_graph), **marks)


def version_svg(version, current=None, visited=(), **marks):
    """The diagram of a published version, with the current state and visited states marked."""
    return render_graph(*version_nodes(version), current=current, visited=visited, **marks)


def rule_set_svg(rule_set, **marks):
    """The diagram of a rule set."""
    return render_graph(*rule_set_nodes(rule_set), **marks)


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
