"""Server-side SVG diagrams of machines, versions and rule sets (no network, no CDN).

STUB — to be replaced by a grandalf-backed layout. The signatures are the contract:

    render_graph(nodes, edges, current=None, visited=()) -> SafeString (an <svg>)
        nodes: list of (key, label, sublabel); edges: list of (parent_key, child_key)
    machine_svg(machine_graph) -> SafeString        # flowr.builder.MachineGraph
    version_svg(version, current=None, visited=()) -> SafeString  # MachineVersion
    rule_set_svg(rule_set) -> SafeString            # flowr.rules.RuleSet
"""
from django.utils.html import escape
from django.utils.safestring import mark_safe


def render_graph(nodes, edges, current=None, visited=()):
    rows = []
    for i, (key, label, sub) in enumerate(nodes):
        fill = "#ffd966" if key == current else ("#dde8f3" if key in visited else "#fff")
        rows.append(f'<g><rect x="10" y="{10 + 40 * i}" width="220" height="30" fill="{fill}" '
                    f'stroke="#333"/><text x="20" y="{30 + 40 * i}">{escape(label)} '
                    f'({escape(sub)})</text></g>')
    height = 20 + 40 * len(nodes)
    return mark_safe(f'<svg xmlns="http://www.w3.org/2000/svg" class="flowr-diagram" '
                     f'width="240" height="{height}">{"".join(rows)}</svg>')


def machine_svg(machine_graph):
    nodes = [(s.key, s.name, s.rule_key) for s in machine_graph.states]
    return render_graph(nodes, machine_graph.edges)


def version_svg(version, current=None, visited=()):
    graph = version.graph
    nodes = [(k, n, graph.rules[k]) for k, n in graph.names.items()]
    return render_graph(nodes, graph.edges, current=current, visited=visited)


def rule_set_svg(rule_set):
    nodes = [(k, rule_set.get(k).get_display_name(), k) for k in rule_set.rule_keys()]
    edges = [(k, c) for k in rule_set.rule_keys() for c in rule_set.children_keys(k)]
    return render_graph(nodes, edges)
