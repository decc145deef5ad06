/* Flowr diagrams you act on (machine builder and rule-set pages); no library, no CDN.
 *
 * Click a box of an interactive diagram (svg[data-interactive]), or tab to it and press
 * Enter, and a panel next to it shows that state's (or rule's) row of the table below:
 * its buttons, with the reasons of the disabled ones. Click an arrow for its transition
 * and its remove button. Links marked data-inline (Add…, Connect to…, Edit…) load their
 * form into the page instead of opening the form page (which works without this script).
 * window.flowrLastSelectMs holds how long the last selection took to show (for tests).
 */
(function () {
    "use strict";
    var panel = null, selected = null;

    function rowFor(key) {
        return document.querySelector("tr[data-key=\"" + CSS.escape(key) + "\"]");
    }

    function close() {
        if (panel) { panel.remove(); panel = null; }
        document.querySelectorAll(".fd-selected").forEach(function (el) {
            el.classList.remove("fd-selected");
        });
        document.querySelectorAll(".flowr-row-selected").forEach(function (el) {
            el.classList.remove("flowr-row-selected");
        });
        if (selected) { selected.focus({preventScroll: true}); selected = null; }
    }

    // The panel floats over the page (not inside the diagram's scroll box, which would
    // clip a long form), next to the box or arrow; it follows when the diagram scrolls.
    function holderOf(target) {
        return target.closest(".flowr-diagram-scroll").parentElement;
    }

    function place(box, target) {
        var area = holderOf(target).getBoundingClientRect(), at = target.getBoundingClientRect();
        var left = at.right - area.left + 10;
        if (at.right + box.offsetWidth + 20 > document.documentElement.clientWidth) {
            left = Math.max(4, at.left - area.left - box.offsetWidth - 10);
        }
        box.style.left = left + "px";
        box.style.top = Math.max(4, at.top - area.top) + "px";
    }

    function open(target, title, parts, row) {
        var started = performance.now();
        close();
        selected = target;
        target.classList.add("fd-selected");
        panel = document.createElement("div");
        panel.className = "flowr-panel";
        panel.setAttribute("role", "dialog");
        panel.setAttribute("aria-label", title);
        var head = document.createElement("div");
        head.className = "flowr-panel-head";
        var strong = document.createElement("strong");
        strong.textContent = title;
        var shut = document.createElement("button");
        shut.type = "button";
        shut.className = "flowr-panel-close";
        shut.setAttribute("aria-label", "Close");
        shut.textContent = "×";
        shut.addEventListener("click", close);
        head.append(strong, shut);
        panel.append(head);
        parts.forEach(function (part) { panel.append(part); });
        if (row) {
            row.classList.add("flowr-row-selected");
            var jump = document.createElement("a");
            jump.href = "#" + row.id;
            jump.className = "flowr-panel-jump";
            jump.textContent = "Show in the table";
            panel.append(jump);
        }
        holderOf(target).append(panel);
        place(panel, target);
        var first = panel.querySelector("button:not([disabled]):not(.flowr-panel-close), a[href]");
        (first || shut).focus({preventScroll: true});
        window.flowrLastSelectMs = performance.now() - started;
    }

    function cells(row) {
        return Array.prototype.map.call(row.cells, function (cell) {
            var copy = document.createElement("div");
            copy.className = "flowr-panel-part " + cell.className;
            copy.innerHTML = cell.innerHTML;
            copy.querySelectorAll("[id]").forEach(function (el) { el.removeAttribute("id"); });
            return copy;
        });
    }

    function selectNode(node) {
        var row = rowFor(node.dataset.key);
        var name = node.querySelector("title") ? node.querySelector("title").textContent : "";
        open(node, name, row ? cells(row) : [], row);
    }

    function selectEdge(link) {
        var row = rowFor(link.dataset.parent), parts = [];
        var entry = row && row.querySelector(
            ".flowr-transition[data-child=\"" + CSS.escape(link.dataset.child) + "\"]");
        if (entry) {
            var copy = document.createElement("div");
            copy.className = "flowr-panel-part flowr-transition";
            copy.innerHTML = entry.innerHTML;
            parts.push(copy);
            if (entry.title) {
                var why = document.createElement("p");
                why.className = "flowr-reason";
                why.textContent = entry.title;
                parts.push(why);
            }
        }
        open(link, link.getAttribute("aria-label"), parts, null);
    }

    function activate(event) {
        var target = event.target.closest("svg[data-interactive] [data-key], " +
                                          "svg[data-interactive] .fd-link");
        if (!target || event.target.closest("a")) { return; }
        if (event.type === "keydown") {
            if (event.key !== "Enter" && event.key !== " ") { return; }
            event.preventDefault();
        }
        if (target === selected) { close(); return; }
        if (target.classList.contains("fd-link")) { selectEdge(target); } else { selectNode(target); }
    }

    function inline(event) {
        var link = event.target.closest("a[data-inline]");
        if (!link || event.button || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
        var holder = link.closest(".flowr-panel, td");
        var slot = holder && holder.querySelector(".flowr-inline");
        if (!slot) { return; }
        event.preventDefault();
        if (slot.dataset.href === link.href) { slot.innerHTML = ""; slot.dataset.href = ""; return; }
        fetch(link.href + "&fragment=1", {credentials: "same-origin"}).then(function (response) {
            if (!response.ok) { throw new Error(response.status); }
            return response.text();
        }).then(function (html) {
            slot.innerHTML = html;
            slot.dataset.href = link.href;
            var field = slot.querySelector("input:not([type=hidden]), select, textarea");
            if (field) { field.focus(); }
        }).catch(function () { window.location.href = link.href; });
    }

    document.addEventListener("click", function (event) { activate(event); inline(event); });
    document.addEventListener("scroll", function (event) {
        if (panel && selected && event.target.classList &&
                event.target.classList.contains("flowr-diagram-scroll")) {
            place(panel, selected);
        }
    }, true);
    document.addEventListener("keydown", function (event) {
        if (event.key === "Escape" && panel) { close(); return; }
        activate(event);
    });
}());
