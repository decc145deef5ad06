"""The crawler's tools: every URL pattern of a URLconf, URLs built from them with chosen
values, links and forms read from pages, and a guard that sees any database write.

Generic on purpose: a URL added later (any app, any admin) is enumerated from the root
URLconf and crawled without touching the test.
"""
import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import URLResolver, get_resolver

_NAMED = re.compile(r"\(\?P<(\w+)>")
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|TRUNCATE)\b", re.I)
_SESSION_TABLE = "django_session"

# -- URL patterns -------------------------------------------------------------------------

@dataclass(frozen=True)
class Pattern:
    """One URL pattern: its full regex, the parameters it takes and its parts."""

    regex: str
    name: str
    params: tuple  # names; positional groups are called "_1", "_2" ...
    parts: tuple  # literal text and ("param", name) markers, in order

    def url(self, values):
        """The URL with `values` (a dict by parameter name) put in, percent-quoted."""
        out = []
        for part in self.parts:
            out.append(quote(str(values[part[1]]), safe="%") if isinstance(part, tuple)
                       else part)
        return "/" + "".join(out)

    def matches(self, path):
        return re.fullmatch(self.regex, path.lstrip("/")) is not None


def url_patterns(resolver=None, prefix=""):
    """Every URL pattern reachable from `resolver` (default: the root URLconf)."""
    resolver = resolver or get_resolver()
    found = []
    for entry in resolver.url_patterns:
        regex = prefix + _strip(entry.pattern.regex.pattern)
        if isinstance(entry, URLResolver):
            found += url_patterns(entry, regex)
        else:
            found.append(_pattern(regex, entry.name or getattr(entry.callback, "__name__",
                                                               "?")))
    return found


def _strip(regex):
    regex = regex[1:] if regex.startswith("^") else regex
    for end in ("\\Z", "$"):
        if regex.endswith(end) and not regex.endswith("\\" + end):
            regex = regex[: -len(end)]
    return regex


def _pattern(regex, name):
    parts, params, literal, i, positional = [], [], [], 0, 0
    while i < len(regex):
        char = regex[i]
        if char == "\\":
            literal.append(regex[i + 1])
            i += 2
        elif char == "(":
            end = _group_end(regex, i)
            named = _NAMED.match(regex, i)
            if named:
                param = named.group(1)
            else:
                positional += 1
                param = f"_{positional}"
            parts += ["".join(literal), ("param", param)]
            params.append(param)
            literal, i = [], end + 1
        else:
            literal.append(char)
            i += 1
    parts.append("".join(literal))
    return Pattern(regex, name, tuple(params), tuple(p for p in parts if p != ""))


def _group_end(regex, start):
    depth, i = 0, start
    while i < len(regex):
        if regex[i] == "\\":
            i += 2
            continue
        depth += {"(": 1, ")": -1}.get(regex[i], 0)
        if depth == 0:
            return i
        i += 1
    raise ValueError(f"unbalanced group in {regex!r}")


def match(patterns, path):
    """(pattern, values) of the first pattern matching `path`, or (None, None)."""
    relative = path.lstrip("/")
    for pattern in patterns:
        found = re.fullmatch(pattern.regex, relative)
        if found:
            values = dict(found.groupdict())
            values.update({f"_{n}": v for n, v in enumerate(found.groups(), 1)
                           if f"_{n}" in pattern.params})
            return pattern, values
    return None, None


# -- pages: links and forms -----------------------------------------------------------

@dataclass
class Form:
    """A form found on a page: where it posts and its fields with their first values."""

    action: str
    method: str
    id: str = ""
    fields: dict = field(default_factory=dict)


class _PageParser(HTMLParser):
    def __init__(self, page_url):
        super().__init__()
        self.page_url, self.links, self.forms, self._form = page_url, [], [], None
        self._outside = []  # (form id, name, value) of controls placed outside their form

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "option" and (attrs.get("value") or "").startswith("?"):
            # grappelli's list filters are <select>s of query strings
            self.links.append(self.page_url.split("?")[0] + attrs["value"])
        if tag == "form":
            self._form = Form(attrs.get("action") or self.page_url,
                              (attrs.get("method") or "get").lower(), attrs.get("id") or "")
            self.forms.append(self._form)
        elif tag in ("input", "select", "textarea", "button") and attrs.get("name"):
            if attrs.get("type") == "file":
                return
            value = attrs.get("value") or ""
            if attrs.get("form"):
                self._outside.append((attrs["form"], attrs["name"], value))
            elif self._form is not None:
                self._form.fields.setdefault(attrs["name"], value)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None

    def close(self):
        super().close()
        by_id = {form.id: form for form in self.forms if form.id}
        for form_id, name, value in self._outside:
            if form_id in by_id:
                by_id[form_id].fields.setdefault(name, value)


def read_page(page_url, content):
    """(links, forms) of an HTML page; links are site paths with their query strings."""
    parser = _PageParser(page_url)
    parser.feed(content)
    parser.close()
    links = [_local(html.unescape(link)) for link in parser.links]
    for form in parser.forms:
        form.action = _local(html.unescape(form.action)) or page_url
    return [link for link in links if link], parser.forms


def _local(link):
    parts = urlsplit(link)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return None
    if parts.path.startswith("/static/"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


# -- the database must not change on a GET ------------------------------------------------

class WriteGuard(CaptureQueriesContext):
    """Captures queries; `.writes` lists statements that changed data (sessions aside)."""

    def __init__(self):
        super().__init__(connection)

    @property
    def writes(self):
        statements = (q["sql"] or "" for q in self.captured_queries)  # None: it failed
        return [sql for sql in statements if _WRITE.match(sql)
                and _SESSION_TABLE not in sql]
