"""`runner graph --format html`: one self-contained page with an inline SVG of the task
graph, coloured by each task's last outcome, with durations and the critical path; read as
XML, and rendered by headless Chromium to check that the picture shows every task."""

from __future__ import annotations

import html
import json
import random
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from itertools import combinations

import pytest
from conftest import Project, clean_env

from runner.graph_html import NEVER_RAN, STATUS_STYLES, layout_graph

# build: cached on the second run; lint: runs (the long one); test: fails; release:
# skipped (its dep failed); docs: never run. The summaries hold markup characters.
TASKS = '''
import time

@task(inputs=["src.txt"], outputs=["out.txt"])
def build():
    """Build out.txt from <src.txt> & "friends"."""
    with open("out.txt", "w") as f:
        f.write(open("src.txt").read())

@task(deps=[build])
def lint():
    """Lint, slowly."""
    time.sleep(0.5)

@task(deps=[build])
def test():
    """Test: fails."""
    raise TaskError("no")

@task(deps=[lint, test])
def release():
    """Release it."""

@task(name="docs:build-the-manual")
def docs():
    """Docs: never run."""
'''

ALL_TASKS = {"build", "lint", "test", "release", "docs:build-the-manual"}
LAST_STATUS = {
    "build": "cached",
    "lint": "ok",
    "test": "failed",
    "release": "skipped",
    "docs:build-the-manual": NEVER_RAN,
}


@pytest.fixture
def page(project: Project) -> str:
    """The page after a run where build was cached, lint ran, test failed."""
    project.tasksfile(TASKS)
    project.write("src.txt", "hello\n")
    assert project.run("build").code == 0
    r = project.run("-k", "release")
    assert r.code == 1, r
    r = project.run("graph", "--format", "html", "--output", "graph.html")
    assert r.code == 0, r
    assert "graph.html" in r.out
    return project.read("graph.html")


def svg_of(page: str) -> ET.Element:
    """The inline SVG, parsed as XML (it fails on anything not well-formed)."""
    found = re.search(r"<svg\b.*</svg>", page, re.S)
    assert found, "no inline <svg> in the page"
    return ET.fromstring(found.group(0))


def task_nodes(svg: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-task"): g for g in svg.iter("g") if "task" in g.get("class", "").split()}


def edges(svg: ET.Element) -> dict[tuple[str, str], ET.Element]:
    return {
        (p.get("data-task"), p.get("data-dep")): p
        for p in svg.iter("path")
        if "edge" in p.get("class", "").split()
    }


# ---------------------------------------------------------------- the page, as text and XML


def test_page_is_self_contained(page):
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://", page), "the page refers to the network"
    for external in ("<link", "<script", "<img", "<iframe", "@import", "src="):
        assert external not in page
    # The only url(...) references are to the arrowheads defined in the page itself.
    assert set(re.findall(r"url\(([^)]*)\)", page)) <= {"#arrow", "#arrow-critical"}


def test_svg_is_well_formed_and_shows_every_task(page):
    svg = svg_of(page)
    assert set(task_nodes(svg)) == ALL_TASKS
    for name, g in task_nodes(svg).items():
        texts = [t.text for t in g.iter("text")]
        assert texts[0] == name


def test_every_dependency_is_an_arrow_from_the_task_to_its_dep(page):
    svg = svg_of(page)
    want = {("lint", "build"), ("test", "build"), ("release", "lint"), ("release", "test")}
    assert set(edges(svg)) == want
    assert all(p.get("marker-end", "").startswith("url(#arrow") for p in edges(svg).values())
    legend = "".join(svg.find("g[@class='legend']").itertext())
    assert "a depends on" in legend


def test_tasks_are_coloured_by_their_last_status(page):
    nodes = task_nodes(svg_of(page))
    for name, status in LAST_STATUS.items():
        g = nodes[name]
        assert g.get("data-status") == status
        assert g.find("rect").get("fill") == STATUS_STYLES[status][0], name
    fills = {nodes[n].find("rect").get("fill") for n in LAST_STATUS}
    assert len(fills) == len(LAST_STATUS), "two statuses share a colour"


def test_legend_names_every_status_with_its_colour(page):
    legend = svg_of(page).find("g[@class='legend']")
    text = "".join(legend.itertext())
    fills = {r.get("fill") for r in legend.iter("rect")}
    for status, (fill, _stroke, _dashed, _words) in STATUS_STYLES.items():
        assert status in text
        assert fill in fills
    assert "critical path" in text


def test_nodes_show_the_last_duration(page):
    nodes = task_nodes(svg_of(page))
    detail = {n: [t.text for t in g.iter("text")][1] for n, g in nodes.items()}
    assert re.fullmatch(r"ok · 0\.[5-9]\d+s|ok · \d+\.\d+s", detail["lint"]), detail
    assert re.fullmatch(r"failed · \d+\.\d+s", detail["test"]), detail
    assert detail["docs:build-the-manual"] == "never ran"


def test_critical_path_is_marked(page):
    svg = svg_of(page)
    critical = {n for n, g in task_nodes(svg).items() if "critical" in g.get("class").split()}
    # lint slept 0.5s; test failed at once: the run waited for build, then lint.
    assert {"build", "lint"} <= critical
    assert "test" not in critical and "docs:build-the-manual" not in critical
    assert "critical" in edges(svg)[("lint", "build")].get("class").split()
    assert "critical" not in edges(svg)[("test", "build")].get("class").split()
    assert re.search(r"Critical path of the last run \([\d.]+s\)[^:]*: build, lint", page)


def test_hover_text_has_status_duration_and_summary(page):
    nodes = task_nodes(svg_of(page))
    hover = nodes["build"].find("title").text
    # Escaped in the file, read back intact by an XML parser.
    assert 'Build out.txt from <src.txt> & "friends".' in hover
    assert "last run: cached · " in hover and "critical path" in hover
    assert "<src.txt>" not in page


def test_same_history_gives_the_same_page(page, project):
    again = project.run("graph", "--format", "html")
    assert again.code == 0, again
    assert again.out == page


def test_without_history_every_task_never_ran(project):
    project.tasksfile(TASKS)
    r = project.run("graph", "--format", "html")
    assert r.code == 0, r
    nodes = task_nodes(svg_of(r.out))
    assert {g.get("data-status") for g in nodes.values()} == {NEVER_RAN}
    assert not any("critical" in g.get("class").split() for g in nodes.values())
    assert not (project.root / ".runner" / "state.db").exists(), "graph must write nothing"


def test_graph_of_one_task_shows_its_deps_only(page, project):
    r = project.run("graph", "lint", "--format", "html")
    assert set(task_nodes(svg_of(r.out))) == {"lint", "build"}


def test_project_name_is_escaped_in_the_title(tmp_path):
    project = Project(tmp_path / 'a&b <c> "d"')
    project.tasksfile(TASKS)
    r = project.run("graph", "--format", "html")
    assert "<title>runner graph: a&amp;b &lt;c&gt; &quot;d&quot;</title>" in r.out


def test_output_is_relative_to_the_directory_runner_runs_in(project):
    project.tasksfile(TASKS)
    r = project.run("-C", str(project.root), "graph", "--format", "html", "--output", "g.html",
                    cwd=project.root.parent)
    assert r.code == 0, r
    assert set(task_nodes(svg_of(project.read("g.html")))) == ALL_TASKS


def test_output_into_a_missing_directory_is_a_user_error(project):
    project.tasksfile(TASKS)
    r = project.run("graph", "--format", "html", "--output", "nowhere/g.html")
    assert r.code == 2
    assert "--output nowhere/g.html: No such file or directory" in r.err


def test_other_formats_do_not_import_the_html_module(project):
    project.tasksfile(TASKS)
    script = ("import io, sys, runner.cli; runner.cli.main(['graph'], io.StringIO(), sys.stderr);"
              "print('runner.graph_html' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", script], cwd=project.root, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc


def test_unknown_format_lists_html(project):
    project.tasksfile(TASKS)
    r = project.run("graph", "--format", "htm")
    assert r.code == 2
    assert "html" in r.err


# ---------------------------------------------------------------- the layout, as geometry


def overlap(a, b) -> bool:
    """Do two boxes share any area?"""
    across = a.x < b.x + b.width and b.x < a.x + a.width
    return across and a.y < b.y + b.height and b.y < a.y + a.height


def random_dag(seed: int, n: int) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    """A run order (deps first) and each task's deps, up to 3 earlier tasks each."""
    rng = random.Random(seed)
    order = [f"t{i}" for i in range(n)]
    deps = {
        t: tuple(sorted({order[rng.randrange(i)] for _ in range(rng.randint(0, 3))})) if i else ()
        for i, t in enumerate(order)
    }
    return order, deps


@pytest.mark.parametrize("seed", range(20))
def test_layout_never_overlaps_and_puts_deps_right_of_their_tasks(seed):
    order, deps = random_dag(seed, 40)
    widths = {t: 60.0 + 7 * (i % 5) for i, t in enumerate(order)}
    layout = layout_graph(order, deps, widths)
    boxes = layout.boxes
    assert set(boxes) == set(order)
    for a, b in combinations(order, 2):
        assert not overlap(boxes[a], boxes[b]), (a, b)
    for t in order:
        box = boxes[t]
        assert box.x >= 0 and box.x + box.width <= layout.width
        assert box.y >= 0 and box.y + box.height <= layout.height
        for d in deps[t]:
            assert boxes[d].x >= box.x + box.width, (t, d)
            points = layout.edges[(t, d)]
            assert all(0 <= x <= layout.width and 0 <= y <= layout.height for x, y in points)


def test_layout_of_a_tree_has_no_crossing_edges():
    # Each task is needed by one other: a tree, which can always be drawn without
    # crossings; the barycenter ordering finds such a drawing.
    rng = random.Random(3)
    order = [f"t{i}" for i in range(30)]
    needed_by = {t: order[rng.randrange(i)] for i, t in enumerate(order) if i}
    deps = {t: tuple(d for d, parent in needed_by.items() if parent == t) for t in order}
    order = order[::-1]  # a run order: deps first
    layout = layout_graph(order, deps, dict.fromkeys(order, 80.0))
    centre = {t: b.y + b.height / 2 for t, b in layout.boxes.items()}
    pairs = [(t, d) for t in order for d in deps[t]]
    for (a, b), (c, d) in combinations(pairs, 2):
        if layout.boxes[a].x == layout.boxes[c].x and layout.boxes[b].x == layout.boxes[d].x:
            assert (centre[a] - centre[c]) * (centre[b] - centre[d]) >= 0, ((a, b), (c, d))


def test_layout_is_deterministic():
    order, deps = random_dag(11, 60)
    widths = dict.fromkeys(order, 70.0)
    assert layout_graph(order, deps, widths) == layout_graph(order, deps, widths)


# ---------------------------------------------------------------- the picture, in Chromium

MEASURE = """
<script>
// Each task node's box (getBBox, and on the page), its label's width, and the SVG's
// box, written into the document for --dump-dom to carry out.
const svg = document.querySelector("svg");
const frame = svg.getBoundingClientRect();
const nodes = [];
for (const g of svg.querySelectorAll("g.task")) {
  const rect = g.querySelector("rect");
  const bbox = rect.getBBox();
  const r = rect.getBoundingClientRect();
  const labels = [...g.querySelectorAll("text")].map(t => t.getBBox().width);
  nodes.push({task: g.dataset.task, bbox: [bbox.width, bbox.height],
              box: [r.left, r.top, r.right, r.bottom], labels: labels});
}
const out = document.createElement("pre");
out.id = "measured";
out.textContent = JSON.stringify({
  svg: [frame.left, frame.top, frame.right, frame.bottom],
  viewBox: [svg.viewBox.baseVal.width, svg.viewBox.baseVal.height], nodes: nodes});
document.body.appendChild(out);
</script>
"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run does)")
    return found


def render_and_measure(page: str, tmp_path) -> dict:
    """Open a copy of the page with MEASURE appended in headless Chromium; what it
    measured."""
    copy = tmp_path / "measure.html"
    copy.write_text(page.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
    proc = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         "--window-size=1600,1200", "--dump-dom", copy.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="measured">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"Chromium rendered nothing measurable (exit {proc.returncode}): {proc.stderr}"
    return json.loads(html.unescape(found.group(1)))


def test_chromium_renders_every_task_inside_the_picture_without_overlaps(page, tmp_path):
    measured = render_and_measure(page, tmp_path)
    nodes = {n["task"]: n for n in measured["nodes"]}
    assert set(nodes) == ALL_TASKS
    left, top, right, bottom = measured["svg"]
    assert (right - left, bottom - top) == pytest.approx(measured["viewBox"], abs=1)
    for name, n in nodes.items():
        assert n["bbox"][0] > 0 and n["bbox"][1] > 0, f"{name} has an empty box"
        x0, y0, x1, y1 = n["box"]
        assert left <= x0 < x1 <= right and top <= y0 < y1 <= bottom, f"{name} is outside"
    for a, b in combinations(nodes.values(), 2):
        (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a["box"], b["box"]
        apart = ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0
        assert apart, f"{a['task']} and {b['task']} overlap"


def test_chromium_fits_every_label_inside_its_node(page, tmp_path):
    # Node widths come from label lengths in a monospace font; this checks the estimate
    # against the font Chromium actually used (docs:build-the-manual's is the longest).
    for n in render_and_measure(page, tmp_path)["nodes"]:
        assert max(n["labels"]) + 2 * 4 <= n["bbox"][0], n
