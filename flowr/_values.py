"""Checks of values a database must be able to store: JSON nesting and text.

PostgreSQL cannot hold a NUL character in text or JSON, nor a lone UTF-16 surrogate;
deeply nested JSON costs recursion. Imports, task states and names share these checks.
"""


def value_problem(value, max_depth):
    """Why `value` (JSON-like) cannot be stored: "deep", "nul" or "surrogate"; or None.

    Iterative, so no nesting depth can exhaust the stack.
    """
    todo = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if depth > max_depth:
            return "deep"
        if isinstance(item, dict):
            todo.extend((key, depth) for key in item)
            todo.extend((inner, depth + 1) for inner in item.values())
        elif isinstance(item, (list, tuple)):
            todo.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
    return None


def text_problem(text):
    """ "nul" or "surrogate" when a database cannot store `text`, else None."""
    if "\x00" in text:
        return "nul"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "surrogate"
    return None


def clean_label(value, what, limit, error):
    """`value` stripped; raises `error` when it is too long or holds what text cannot hold."""
    value = (value or "").strip()
    if len(value) > limit:
        raise error(f"The {what} is {len(value)} characters long; at most {limit} "
                    f"characters are allowed.")
    if text_problem(value):
        raise error(f"The {what} contains a character that cannot be stored (NUL or a lone "
                    f"surrogate); remove it.")
    return value
