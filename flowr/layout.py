"""Diagram layout: where each box and arrow of a directed graph goes, computed once per
graph shape and shared between processes through Django's cache framework.

    layout(order, widths, edges) -> dict (JSON-safe, final SVG coordinates):
        {"size": [width, height],
         "nodes": {key: [centre x, centre y]},
         "edges": [[parent, child, SVG path data, kind]]}   kind: "" | "back" | "loop"
    cached_layout(order, widths, edges) -> the same, by a checksum of the input

grandalf lays out the forward edges (a layered Sugiyama layout of the graph without its
cycles); edges that close a cycle are drawn afterwards along the right-hand side of the
boxes they pass, so a long loop back costs no dummy vertices. If grandalf fails, a
breadth-first layered grid is used, so a page never breaks because of its diagram.
"""
import hashlib
import json
import logging
import math
from collections import OrderedDict, defaultdict

from django.conf import settings
from django.core.cache import caches

from . import graph as _graph

log = logging.getLogger(__name__)

NODE_H = 46
X_SPACE, Y_SPACE = 36, 64
MARGIN = 24
LANE = 7  # horizontal distance between loop-back arrows running side by side
LANES = 10  # loop-back arrows beside one stretch of boxes before lanes repeat
FORMAT = 2  # bump when the geometry changes, so cached layouts of old code are ignored
_LOCAL = OrderedDict()  # per-process copy of recent layouts, in front of the shared cache
_LOCAL_SIZE = 32


def back_edges(order, edges):
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


def _components(order, edges):
    """Weakly connected components (lists of keys, in `order`), by union-find."""
    parent = {key: key for key in order}

    def find(key):
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for a, b in edges:
        parent[find(a)] = find(b)
    groups = defaultdict(list)
    for key in order:
        groups[find(key)].append(key)
    return list(groups.values())


def _core(graph_core, first, g_edges):
    """A grandalf graph of one connected component, grown edge by edge from `first`.

    graph_core(V, E) checks connectivity by comparing vertex sets, in quadratic time;
    add_edge() only needs one end of each edge to be in the graph already.
    """
    around = defaultdict(list)
    for edge in g_edges.values():
        around[edge.v[0]].append(edge)
        around[edge.v[1]].append(edge)
    core = graph_core()
    core.add_single_vertex(first)
    seen, todo = {first}, [first]
    while todo:
        for edge in around[todo.pop()]:
            core.add_edge(edge)
            for vertex in edge.v:
                if vertex not in seen:
                    seen.add(vertex)
                    todo.append(vertex)
    return core


def _grandalf_component(keys, widths, edges, offset):
    """Centres and bend points of one connected component, shifted right by `offset`."""
    from grandalf.graphs import Edge, Vertex, graph_core
    from grandalf.layouts import SugiyamaLayout

    vertices = {key: Vertex(key) for key in keys}
    for key, vertex in vertices.items():
        vertex.view = _View(widths[key], NODE_H)
    g_edges = {(p, c): Edge(vertices[p], vertices[c]) for p, c in edges}
    layout = SugiyamaLayout(_core(graph_core, vertices[keys[0]], g_edges))
    layout.xspace, layout.yspace = X_SPACE, Y_SPACE
    layout.init_all(roots=[vertices[keys[0]]], inverted_edges=[])
    layout.draw(N=3)
    shift = offset - min(v.view.xy[0] - v.view.w / 2 for v in vertices.values())
    centres = {k: (v.view.xy[0] + shift, v.view.xy[1]) for k, v in vertices.items()}
    bends = {}
    for key, edge in g_edges.items():
        ctrl = layout.ctrls.get(edge)
        if ctrl:
            bends[key] = [(ctrl[r].view.xy[0] + shift, ctrl[r].view.xy[1])
                          for r in sorted(ctrl)[1:-1]]
    return centres, bends


def _grandalf_layout(order, widths, edges):
    """Node centres and bend points {edge: [points]} of a graph without cycles."""
    centres, bends, offset = {}, {}, 0.0
    for keys in _components(order, edges):
        inside = set(keys)
        mine = [(p, c) for p, c in edges if p in inside]
        if len(keys) == 1:
            part = {keys[0]: (offset + widths[keys[0]] / 2, 0.0)}, {}
        else:
            part = _grandalf_component(keys, widths, mine, offset)
        centres.update(part[0])
        bends.update(part[1])
        offset = max(centres[k][0] + widths[k] / 2 for k in keys) + X_SPACE * 2
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


def _place(order, widths, forward):
    try:
        return _grandalf_layout(order, widths, forward)
    except Exception:  # noqa: BLE001 - any layout failure falls back to a plain grid
        log.warning("grandalf layout failed; using the layered grid", exc_info=True)
        return _fallback_layout(order, widths, forward)


def _clip(centre, width, toward):
    """The point where the line from a box centre toward `toward` leaves the box."""
    (cx, cy), (tx, ty) = centre, toward
    dx, dy = tx - cx, ty - cy
    if dx == 0 and dy == 0:
        return cx, cy
    hw, hh = width / 2, NODE_H / 2
    scale = min(hw / abs(dx) if dx else math.inf, hh / abs(dy) if dy else math.inf)
    return cx + dx * scale, cy + dy * scale


def _forward_path(start, end, w_start, w_end, points):
    """Path data from the parent box border through the bend points to the child's border."""
    first = _clip(start, w_start, points[0] if points else end)
    last = _clip(end, w_end, points[-1] if points else start)
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
    return (f"M{x:.1f},{y - 10:.1f} C{x + 34:.1f},{y - 26:.1f} {x + 34:.1f},{y + 26:.1f} "
            f"{x:.1f},{y + 10:.1f}")


class _Lanes:
    """Right-hand lanes for arrows that loop back: beside every box they pass."""

    def __init__(self, centres, widths):
        self.right = defaultdict(float)  # row y -> rightmost box edge on that row
        for key, (x, y) in centres.items():
            self.right[y] = max(self.right[y], x + widths[key] / 2)
        self.rows = sorted(self.right)
        self.used, self.widest = 0, 0.0

    def x_between(self, y1, y2):
        low, high = min(y1, y2), max(y1, y2)
        edge = max((self.right[y] for y in self.rows if low <= y <= high), default=0.0)
        self.used += 1
        x = edge + 18 + LANE * (self.used % LANES)
        self.widest = max(self.widest, x)
        return x


def _back_path(start, end, w_start, w_end, lanes):
    """From the right side of the lower box out to a lane, up, and into the upper box."""
    x1, y1 = start[0] + w_start / 2, start[1] + 6
    x2, y2 = end[0] + w_end / 2, end[1] - 6
    lane = lanes.x_between(y1, y2)
    r = min(10.0, abs(y1 - y2) / 2 or 1.0)
    up = -1 if y2 < y1 else 1
    return (f"M{x1:.1f},{y1:.1f} L{lane - r:.1f},{y1:.1f} Q{lane:.1f},{y1:.1f} "
            f"{lane:.1f},{y1 + up * r:.1f} L{lane:.1f},{y2 - up * r:.1f} "
            f"Q{lane:.1f},{y2:.1f} {lane - r:.1f},{y2:.1f} L{x2:.1f},{y2:.1f}")


def _paths(edges, back, centres, widths, bends):
    lanes = _Lanes(centres, widths)
    result = []
    for parent, child in edges:
        start, end = centres[parent], centres[child]
        if parent == child:
            result.append([parent, child, _loop_path(start, widths[parent]), "loop"])
        elif (parent, child) in back:
            path = _back_path(start, end, widths[parent], widths[child], lanes)
            result.append([parent, child, path, "back"])
        else:
            path = _forward_path(start, end, widths[parent], widths[child],
                                 bends.get((parent, child), []))
            result.append([parent, child, path, ""])
    return result, lanes.widest


def layout(order, widths, edges):
    """Positions of every box and the path of every arrow (see the module docstring)."""
    known = set(order)
    edges = [(p, c) for p, c in dict.fromkeys(edges) if p in known and c in known]
    back = back_edges(order, [(p, c) for p, c in edges if p != c])
    forward = [(p, c) for p, c in edges if p != c and (p, c) not in back]
    centres, bends = _place(order, widths, forward) if order else ({}, {})
    xs = [centres[k][0] - widths[k] / 2 for k in order]
    ys = [y for _, y in centres.values()]
    dx, dy = MARGIN - min(xs, default=0), MARGIN + NODE_H / 2 - min(ys, default=0)
    centres = {k: (x + dx, y + dy) for k, (x, y) in centres.items()}
    bends = {k: [(x + dx, y + dy) for x, y in pts] for k, pts in bends.items()}
    paths, lanes = _paths(edges, back, centres, widths, bends)
    right = max([centres[k][0] + widths[k] / 2 + 40 for k in order]
                + [x for pts in bends.values() for x, _ in pts] + [lanes + 10], default=0)
    bottom = max((y for _, y in centres.values()), default=0) + NODE_H / 2
    return {"size": [int(right + MARGIN), int(bottom + MARGIN)],
            "nodes": {k: [round(x, 1), round(y, 1)] for k, (x, y) in centres.items()},
            "edges": paths}


def _checksum(order, widths, edges):
    text = json.dumps([FORMAT, order, [widths[k] for k in order], sorted(edges)],
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def cached_layout(order, widths, edges):
    """layout(), computed once per graph shape: this process first, then the shared cache.

    The key is a checksum of the boxes (keys, widths) and arrows only, so renaming a
    state or changing its settings reuses the layout; any worker that computes one
    stores it for the others (settings.FLOWR_LAYOUT_CACHE, a cache alias).
    """
    key = "flowr-layout:" + _checksum(order, widths, list(edges))
    found = _LOCAL.get(key)
    if found is not None:
        _LOCAL.move_to_end(key)
        return found
    cache = caches[getattr(settings, "FLOWR_LAYOUT_CACHE", "default")]
    try:
        stored = cache.get(key)
        found = json.loads(stored) if isinstance(stored, str) else None
    except Exception:  # noqa: BLE001 - a cache that is down only costs a layout
        log.warning("layout cache unavailable", exc_info=True)
        cache = None
    if found is None:
        found = layout(order, widths, edges)
        if cache is not None:
            _store(cache, key, found)
    _LOCAL[key] = found
    if len(_LOCAL) > _LOCAL_SIZE:
        _LOCAL.popitem(last=False)
    return found


def _store(cache, key, value):
    try:
        # Stored as JSON text: plain data, whatever serializer the cache backend uses.
        cache.set(key, json.dumps(value, separators=(",", ":")), timeout=None)
    except Exception:  # noqa: BLE001 - not stored: the next worker lays it out again
        log.warning("could not store a layout in the cache", exc_info=True)


def clear_local():
    """Forget this process's copies (tests)."""
    _LOCAL.clear()
