"""The rows of the machine page's state table, written in Python like the admin's own
change-list rows (django.contrib.admin.templatetags.admin_list): one page may hold a
thousand of them, and a template per row would cost most of the page's time.

Every button belongs to the page's one action form (form="flowr-act") and names its
own URL (formaction), so a row holds no CSRF token and no <form>; the forms that need a
list of states or a rule's settings are links to the state page (builder_forms.py),
which the page's script opens inline.
"""
import html

from django.utils.safestring import mark_safe


def escape(value):
    """django.utils.html.escape() without its lazy-string wrapper: thousands of calls a page."""
    return html.escape(str(value))


MANY, FIRST = 8, 6  # a state that may add more rules than MANY shows FIRST, then "Add…"


def _button(url, label, css="flowr-btn", name="", value="", disabled=False, extra=""):
    named = f' name="{name}" value="{escape(value)}"' if name else ""
    off = " disabled" if disabled else ""
    return (f'<button form="flowr-act" formaction="{url}"{named} class="{css}"{off}{extra}>'
            f"{escape(label)}</button>")


def _link(url, label, css="flowr-btn"):
    return f'<a href="{url}" class="{css}" data-inline>{escape(label)}</a>'


def _state_cell(row):
    state = row.state
    parts = [f'<td class="flowr-state-cell"><strong class="flowr-state-name" '
             f'title="rule {escape(state.rule_key)}">{escape(state.name)}</strong>']
    if state.is_root:
        parts.append(' <span class="flowr-badge">root</span>')
    if row.rule_name:
        parts.append(f'<div class="flowr-rule">{escape(row.rule_name)}</div>')
    if state.settings:
        chips = "".join(f"<span>{escape(k)} = {escape(v)}</span>"
                        for k, v in state.settings.items())
        parts.append(f'<div class="flowr-settings">{chips}</div>')
    if row.summary:
        parts.append(f'<div class="flowr-options">{escape(row.summary)}</div>')
    if row.count:
        parts.append(f'<div><a class="flowr-count-link" href="{escape(row.count_url)}">'
                     f'{row.count} active instance{"s" if row.count != 1 else ""}</a></div>')
    parts.append("</td>")
    return "".join(parts)


def _children_cell(row, url, can):
    parts = ['<td class="flowr-children">']
    for child, refusal in row.children:
        why = f' title="{escape(refusal)}"' if refusal else ""
        parts.append(f'<div class="flowr-transition" data-child="{escape(child.key)}"{why}>'
                     f"→ {escape(child.name)}")
        if can:
            parts.append(" " + _button(
                url + "disconnect/", "×", "flowr-btn flowr-btn-small flowr-btn-danger", "child",
                child.pk, bool(refusal), f' aria-label="Remove → {escape(child.name)}"'))
        parts.append("</div>")
    if not row.children:
        parts.append('<span class="flowr-muted">— (an instance here is finished)</span>')
    parts.append("</td>")
    return "".join(parts)


def _add_group(add, url):
    """The buttons of one rule a state may add: connect to its existing states, add one."""
    parts = ['<span class="flowr-add">']
    if len(add.existing) == 1:
        other = add.existing[0]
        parts.append(_button(url + "connect/", f"Connect to {other.name}", name="child",
                             value=other.pk))
    elif add.existing:
        parts.append(_link(f"{url}?do=connect&amp;rule={escape(add.rule_key)}",
                           f"Connect to a {add.name}…"))
    label = f"Add {'another ' if add.existing else ''}{add.name}"
    if add.needs_form:
        parts.append(_link(f"{url}?do=add&amp;rule={escape(add.rule_key)}", label + "…",
                           "flowr-btn flowr-btn-add"))
    else:
        parts.append(_button(url + "add/", label, "flowr-btn flowr-btn-add", "rule",
                             add.rule_key))
    parts.append("</span>")
    return "".join(parts)


def _actions_cell(row, url):
    state = row.state
    parts = ['<td class="flowr-actions"><div class="flowr-action-line">']
    shown = row.adds if len(row.adds) <= MANY else row.adds[:FIRST]
    parts += [_add_group(add, url) for add in shown]
    if len(shown) < len(row.adds):
        parts.append(_link(url + "?do=add", f"Add… ({len(row.adds) - len(shown)} more rules)"))
    parts.append("</div>")
    if row.blocked:
        parts.append(f'<div class="flowr-reason">{escape(row.blocked)}</div>')
    parts.append('<div class="flowr-action-line">' + _link(url + "?do=edit", "Edit…"))
    if not state.is_root:
        why = f' aria-describedby="why{state.pk}"' if row.removal_error else ""
        parts.append(_button(url + "remove/", "Remove", "flowr-btn flowr-btn-danger",
                             disabled=bool(row.removal_error), extra=why))
        parts.append(_button(url + "prune/", "Prune…", "flowr-btn flowr-btn-danger"))
    parts.append("</div>")
    if row.removal_error:
        parts.append(f'<div class="flowr-reason" id="why{state.pk}">Remove: '
                     f"{escape(row.removal_error)}</div>")
    parts.append('<div class="flowr-inline"></div></td>')
    return "".join(parts)


def row_html(row, base, can):
    """One <tr> of the state table; `base` + '<pk>/' is the state's URL prefix."""
    state = row.state
    url = f"{base}{state.pk}/"
    cells = _state_cell(row) + _children_cell(row, url, can)
    if can:
        cells += _actions_cell(row, url)
    return (f'<tr class="flowr-state" id="flowr-state-{state.pk}" data-key="{escape(state.key)}"'
            f' data-state="{escape(state.name)}">{cells}</tr>\n')


def rows_html(rows, base, can):
    """The whole table body."""
    return mark_safe("".join(row_html(row, base, can) for row in rows))
