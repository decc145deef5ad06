"""Diagrams as text for other tools: Mermaid `stateDiagram-v2` and Graphviz DOT.

    mermaid(nodes, edges, current=None, title="") -> str
    dot(nodes, edges, current=None, title="") -> str
        nodes: list of (key, label, sublabel), the root first; edges: (parent, child) keys

Both mark the root with an arrow from the start, states without children as final, and
the current state (an instance's) highlighted. Labels are quoted, never trusted as syntax.
"""
import json
import re

CURRENT_FILL = "#ffe27a"


def _mermaid_ids(nodes):
    """A unique Mermaid identifier per state key (letters, digits and _ only)."""
    ids, taken = {}, set()
    for key, _, _ in nodes:
        base = "s_" + re.sub(r"\W", "_", str(key), flags=re.ASCII)
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        ids[key] = name
        taken.add(name)
    return ids


_MERMAID_ESCAPES = {"#": "#35;", '"': "#quot;", ";": "#59;", "\n": " ", "\r": " "}


def _mermaid_text(text):
    """Mermaid label text: characters with a meaning in its syntax become entity codes."""
    return re.sub(r'[#";\r\n]', lambda m: _MERMAID_ESCAPES[m.group()], str(text))


def mermaid(nodes, edges, current=None, title=""):
    """The graph as Mermaid stateDiagram-v2 text."""
    ids = _mermaid_ids(nodes)
    lines = ["---", f"title: {json.dumps(str(title))}", "---"] if title else []
    lines.append("stateDiagram-v2")
    for key, label, sub in nodes:
        text = f"{label} ({sub})" if sub and sub != label else label
        lines.append(f'    state "{_mermaid_text(text)}" as {ids[key]}')
    if nodes:
        lines.append(f"    [*] --> {ids[nodes[0][0]]}")
    parents = set()
    for parent, child in edges:
        if parent in ids and child in ids:
            lines.append(f"    {ids[parent]} --> {ids[child]}")
            parents.add(parent)
    lines += [f"    {ids[key]} --> [*]" for key, _, _ in nodes if key not in parents]
    if current in ids:
        lines.append(f"    classDef current fill:{CURRENT_FILL},stroke:#b8860b,stroke-width:3px")
        lines.append(f"    class {ids[current]} current")
    return "\n".join(lines) + "\n"


def _dot_text(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(nodes, edges, current=None, title=""):
    """The graph as Graphviz DOT text."""
    keys = {key for key, _, _ in nodes}
    lines = [f"digraph {_dot_text(title or 'flowr')} {{",
             "    rankdir=TB;",
             '    node [shape=box, style="rounded,filled", fillcolor="white", '
             'fontname="Helvetica"];']
    if title:
        lines.append(f"    label={_dot_text(title)}; labelloc=t;")
    if nodes:
        lines.append('    "__start__" [shape=point, width=0.15, label=""];')
    for key, label, sub in nodes:
        text = f"{label}\n{sub}" if sub and sub != label else label
        extra = f', fillcolor="{CURRENT_FILL}", penwidth=3' if key == current else ""
        lines.append(f"    {_dot_text(key)} [label={_dot_text(text)}{extra}];")
    if nodes:
        lines.append(f'    "__start__" -> {_dot_text(nodes[0][0])};')
    for parent, child in edges:
        if parent in keys and child in keys:
            lines.append(f"    {_dot_text(parent)} -> {_dot_text(child)};")
    lines.append("}")
    return "\n".join(lines) + "\n"
