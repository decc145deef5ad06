"""Helpers of the builder's browser tests: rows, clicks that wait for the next page, the
diagram panel, screenshots and figures for the closing report."""
import json
import os

from playwright.sync_api import expect

SELECT_JS = """([selector]) => new Promise(done => {
    const target = document.querySelector(selector);
    const started = performance.now();
    target.dispatchEvent(new MouseEvent("click", {bubbles: true}));
    // Two animation frames: the panel has been laid out and painted.
    requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - started)));
})"""


def row(page, name):
    return page.locator(f'tr.flowr-state[data-state="{name}"]')


def node(page, key):
    return page.locator(f'#flowr-diagram g.fd-node[data-key="{key}"]')


def panel(page):
    return page.locator(".flowr-panel")


def click(button):
    """Click with the button mid-screen, clear of any fixed header or footer."""
    button.evaluate("b => b.scrollIntoView({block: 'center'})")
    button.click()


def click_and_expect(page, button, message):
    """Click a button that posts, and wait for the page that says `message`."""
    with page.expect_navigation():
        click(button)
    messages = page.locator("ul.grp-messagelist li")
    expect(messages.first).to_contain_text(message)


def select(page, key):
    """Click a state in the diagram; returns ms until its panel was painted (in the page)."""
    ms = page.evaluate(SELECT_JS, [f'#flowr-diagram g.fd-node[data-key="{key}"]'])
    expect(panel(page)).to_be_visible()
    return ms


def select_arrow(page, parent_key, child_key):
    page.evaluate(SELECT_JS, [f'#flowr-diagram g.fd-link[data-parent="{parent_key}"]'
                              f'[data-child="{child_key}"]'])
    expect(panel(page)).to_be_visible()


def screenshot(page, path):
    """Full-page screenshot with the viewport as tall as the page."""
    page.evaluate("window.scrollTo(0, 0)")  # else grappelli's fixed header lands mid-page
    height = page.evaluate("document.body.scrollHeight")
    page.set_viewport_size({"width": 1366, "height": min(max(height, 900), 6000)})
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size({"width": 1366, "height": 900})
    assert os.path.getsize(path) > 20_000


def no_horizontal_scroll(page):
    """The page is not wider than the window (long words wrap instead)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width}px wide"


def boxes(page):
    """Boxes of the diagram as (x, y, width, height) in page pixels."""
    return page.evaluate("""() => Array.from(
        document.querySelectorAll('#flowr-diagram g.fd-node rect'),
        r => { const b = r.getBoundingClientRect(); return [b.x, b.y, b.width, b.height]; })""")


def overlapping(found):
    return [(a, b) for i, a in enumerate(found) for b in found[i + 1:]
            if a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3]
            and b[1] < a[1] + a[3]]


def edges_of(machine):
    return sorted((t.parent.name, t.child.name) for t in machine.transitions.all()
                  .select_related("parent", "child"))


def record_figure(artifacts_dir, name, value):
    """Keep a measured figure (e.g. select_ms) in artifacts/figures.json for the report."""
    path = os.path.join(artifacts_dir, "figures.json")
    figures = json.load(open(path)) if os.path.exists(path) else {}
    figures[name] = value
    with open(path, "w") as out:
        json.dump(figures, out, indent=2)
    print(f"{name}: {value}")
