"""`runner graph --format html`: the DAG as one self-contained page, an inline SVG laid out
here (layered, Sugiyama-style), each task coloured by how it ended the last time it ran.

Imported only for that format: nothing here is on the start-up path. The layout is done
here even where Graphviz's `dot` is installed, so that the page is the same on every
machine, and what the tests check is what every user gets."""

from __future__ import annotations

import html
import os
import unicodedata
from dataclasses import dataclass
from itertools import pairwise

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .graph import Graph

NEVER_RAN = "never ran"

# status: (fill, stroke, dashed outline, what the legend says)
STATUS_STYLES: dict[str, tuple[str, str, bool, str]] = {
    "ok": ("#d5f5dc", "#2e7d32", False, "ok: ran and succeeded"),
    "cached": ("#dce9f8", "#3b6ea8", False, "cached: up to date"),
    "restored": ("#d6f1ee", "#23857d", False, "restored: outputs from the cache"),
    "failed": ("#fbd5d2", "#c62828", False, "failed"),
    "cancelled": ("#fde5c4", "#c46a00", False, "cancelled: interrupted"),
    "skipped": ("#ececec", "#7a7a7a", True, "skipped: a dep failed, or the run stopped"),
    NEVER_RAN: ("#ffffff", "#a0a0a0", True, "never ran"),
}
CRITICAL = "#7b1fa2"  # the critical path's outline and edges: no status uses purple
EDGE = "#6b6b6b"
DASHES = ' stroke-dasharray="5 3"'  # the outline of a task that did not run

FONT = "'DejaVu Sans Mono', 'Liberation Mono', Menlo, Consolas, monospace"
# A monospace font, so that a label's width follows from its length (no font metrics
# here): a character is about 0.6 em wide; round up a little.
NAME_SIZE, NAME_CHAR = 13, 8.0
DETAIL_SIZE, DETAIL_CHAR = 11, 6.8
NODE_HEIGHT, NODE_PAD, NODE_MIN_WIDTH = 42.0, 12.0, 72.0
BEND_HEIGHT = 6.0  # the room a long edge takes where it passes through a layer
NODE_GAP, BEND_GAP = 18.0, 8.0  # vertical space between neighbours in a layer
LAYER_GAP = 72.0  # horizontal space between layers, for the edges
MARGIN = 16.0
ORDER_SWEEPS, PLACE_SWEEPS = 8, 6


def read_last_statuses(cache_dir: str) -> dict[str, tuple[str, float]]:
    """Each task's status and duration the last time it ran; {} before the first run."""
    if not os.path.exists(os.path.join(cache_dir, "state.db")):
        return {}
    from .store import Store

    store = Store(cache_dir, readonly=True)
    try:
        return store.last_statuses()
    finally:
        store.close()


def graph_page(
    graph: Graph, order: list[str], statuses: dict[str, tuple[str, float]], title: str
) -> str:
    """The whole HTML page for the tasks of `order` (a run order, deps first)."""
    deps = {n: graph.deps(n) for n in order}
    durations = {n: statuses[n][1] for n in order if n in statuses}
    path = critical_path(order, deps, durations) if durations else []
    labels = {n: (n, _detail(statuses.get(n))) for n in order}
    widths = {n: _node_width(*labels[n]) for n in order}
    layout = layout_graph(order, deps, widths)
    svg = _svg(layout, graph, labels, statuses, path)
    return _html(title, _summary(order, statuses, path), svg)


def critical_path(
    order: list[str], deps: dict[str, tuple[str, ...]], durations: dict[str, float]
) -> list[str]:
    """The chain that ended latest when each task starts as its last dep ends, first task
    first (Outcome.critical_path's rule, on the recorded durations)."""
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for name in order:
        before = max(deps[name], key=lambda d: finish[d], default=None)
        finish[name] = (finish[before] if before is not None else 0.0) + durations.get(name, 0.0)
        via[name] = before
    if not finish:
        return []
    node: str | None = max(order, key=lambda n: finish[n])
    path = []
    while node is not None:
        path.append(node)
        node = via[node]
    return path[::-1]


# ------------------------------------------------------------------------------ layout


@dataclass(frozen=True)
class Box:
    """Where a task's node is drawn: its top-left corner and its size."""

    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Layout:
    """Boxes for the tasks and, for each edge (task, dep), the points it passes through."""

    boxes: dict[str, Box]
    edges: dict[tuple[str, str], list[tuple[float, float]]]
    width: float
    height: float


def layout_graph(
    order: list[str], deps: dict[str, tuple[str, ...]], widths: dict[str, float]
) -> Layout:
    """A layered drawing, left to right: tasks nothing depends on in the first layer, each
    dep at least one layer right of every task that needs it."""
    layer = _layers(order, deps)
    layers = _split_long_edges(order, deps, layer)
    layers.rows = _reduce_crossings(layers)
    centre = _place_rows(layers)
    top = min((centre[v] - layers.height(v) / 2 for v in centre), default=0.0)
    y = {v: c - top + MARGIN for v, c in centre.items()}
    columns = [max((widths[n] for n in layers.tasks_in(row)), default=0.0) for row in layers.rows]
    left = [MARGIN + sum(columns[:i]) + i * LAYER_GAP for i in range(len(columns))]
    boxes = {}
    for name in order:
        i, v = layer[name], layers.index[name]
        x = left[i] + (columns[i] - widths[name]) / 2
        boxes[name] = Box(x, y[v] - NODE_HEIGHT / 2, widths[name], NODE_HEIGHT)
    edges = {
        edge: _edge_points(
            layers, chain, y, boxes, left[layer[edge[0]] + 1 :], columns[layer[edge[0]] + 1 :]
        )
        for edge, chain in layers.chains.items()
    }
    width = (left[-1] + columns[-1] + MARGIN) if columns else 2 * MARGIN
    height = max((y[v] + layers.height(v) / 2 for v in y), default=0.0) + MARGIN
    return Layout(boxes, edges, width, height)


@dataclass
class _Layers:
    """The graph as layers of vertices, every edge between neighbouring layers: a vertex
    is a task, or None for where an edge that spans several layers crosses one."""

    vertices: list[str | None]
    index: dict[str, int]  # a task's vertex
    rows: list[list[int]]  # the vertices of each layer, top to bottom
    chains: dict[tuple[str, str], list[int]]  # each edge (task, dep): the vertices it joins
    up: dict[int, list[int]]  # a vertex's neighbours in the layer on its left
    down: dict[int, list[int]]  # ... and on its right

    def tasks_in(self, row: list[int]) -> list[str]:
        return [n for n in map(self.vertices.__getitem__, row) if n is not None]

    def height(self, v: int) -> float:
        return NODE_HEIGHT if self.vertices[v] is not None else BEND_HEIGHT

    def spacing(self, row: list[int]) -> list[float]:
        """The least distance between the centres of each vertex and the next in `row`."""
        return [
            (self.height(a) + self.height(b)) / 2
            + (NODE_GAP if self.vertices[a] and self.vertices[b] else BEND_GAP)
            for a, b in pairwise(row)
        ]


def _layers(order: list[str], deps: dict[str, tuple[str, ...]]) -> dict[str, int]:
    """Each task's layer: the longest path to it from a task nothing depends on."""
    layer = dict.fromkeys(order, 0)
    # Reversed, a run order has every task before its deps: a task's layer is final
    # by the time it pushes its deps further right.
    for name in reversed(order):
        for d in deps[name]:
            layer[d] = max(layer[d], layer[name] + 1)
    return layer


def _split_long_edges(
    order: list[str], deps: dict[str, tuple[str, ...]], layer: dict[str, int]
) -> _Layers:
    """Put a vertex wherever an edge crosses a layer, so that every edge joins
    neighbouring layers (the crossing counts and the placement rely on it)."""
    vertices: list[str | None] = list(order)
    index = {n: i for i, n in enumerate(order)}
    rows: list[list[int]] = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for name in order:
        rows[layer[name]].append(index[name])
    chains = {}
    for name in order:
        for d in deps[name]:
            chain = [index[name]]
            for i in range(layer[name] + 1, layer[d]):
                vertices.append(None)
                rows[i].append(len(vertices) - 1)
                chain.append(len(vertices) - 1)
            chains[(name, d)] = [*chain, index[d]]
    up: dict[int, list[int]] = {v: [] for v in range(len(vertices))}
    down: dict[int, list[int]] = {v: [] for v in range(len(vertices))}
    for chain in chains.values():
        for a, b in pairwise(chain):
            down[a].append(b)
            up[b].append(a)
    return _Layers(vertices, index, rows, chains, up, down)


def _reduce_crossings(layers: _Layers) -> list[list[int]]:
    """Reorder each layer by the mean position of its neighbours (the barycenter
    heuristic), sweeping right, then left, and again; the order with the fewest
    crossings seen after any sweep."""
    rows = [list(r) for r in layers.rows]
    best, fewest = [list(r) for r in rows], _crossings(rows, layers.down)
    rightwards = [(i, i - 1, layers.up) for i in range(1, len(rows))]
    leftwards = [(i, i + 1, layers.down) for i in range(len(rows) - 2, -1, -1)]
    for sweep in [rightwards, leftwards] * ORDER_SWEEPS:
        if fewest == 0:
            break
        for i, fixed, neighbours in sweep:
            rows[i] = _by_barycenter(rows[i], rows[fixed], neighbours)
        count = _crossings(rows, layers.down)
        if count < fewest:
            best, fewest = [list(r) for r in rows], count
    return best


def _by_barycenter(row: list[int], fixed: list[int], neighbours: dict[int, list[int]]) -> list[int]:
    """`row` sorted by the mean position of each vertex's neighbours in `fixed`."""
    # Positions as fractions of the layer's length, so that a vertex with no neighbour
    # there can keep its own place among the others; ties keep the old order (which
    # makes the result deterministic).
    position = {v: (i + 0.5) / len(fixed) for i, v in enumerate(fixed)}

    def key(at: int) -> tuple[float, int]:
        near = [position[n] for n in neighbours[row[at]]]
        return (sum(near) / len(near) if near else (at + 0.5) / len(row), at)

    return [row[at] for at in sorted(range(len(row)), key=key)]


def _crossings(rows: list[list[int]], down: dict[int, list[int]]) -> int:
    """How many pairs of edges cross between neighbouring layers."""
    import bisect

    total = 0
    for upper, lower in pairwise(rows):
        position = {v: i for i, v in enumerate(lower)}
        ends = [position[b] for a in upper for b in sorted(down[a], key=position.__getitem__)]
        seen: list[int] = []
        for end in ends:  # the edges before this one (from higher up) that end lower down
            total += len(seen) - bisect.bisect_right(seen, end)
            bisect.insort(seen, end)
    return total


def _place_rows(layers: _Layers) -> dict[int, float]:
    """Vertical centres: each vertex as near the mean of its neighbours as the vertices
    above and below it in its layer allow, which straightens the edges."""
    centre: dict[int, float] = {}
    for row in layers.rows:  # start stacked, each layer centred on 0
        spacing = layers.spacing(row)
        centre.update(zip(row, _offsets(spacing, -sum(spacing) / 2), strict=True))
    for _ in range(PLACE_SWEEPS):
        for row in layers.rows:
            _pull(row, layers.up, centre, layers)
        for row in reversed(layers.rows):
            _pull(row, layers.down, centre, layers)
    both = {v: layers.up[v] + layers.down[v] for v in centre}
    for row in layers.rows:
        _pull(row, both, centre, layers)
    return centre


def _pull(
    row: list[int], neighbours: dict[int, list[int]], centre: dict[int, float], layers: _Layers
) -> None:
    wanted = []
    for v in row:
        near = neighbours[v]
        wanted.append(sum(centre[n] for n in near) / len(near) if near else centre[v])
    centre.update(zip(row, _closest_in_order(wanted, layers.spacing(row)), strict=True))


def _offsets(spacing: list[float], start: float = 0.0) -> list[float]:
    found = [start]
    for s in spacing:
        found.append(found[-1] + s)
    return found


def _closest_in_order(wanted: list[float], spacing: list[float]) -> list[float]:
    """Positions nearest `wanted` (least squares) that keep their order, at least
    spacing[i] apart between i and i + 1: isotonic regression (pool adjacent violators)
    on the wanted positions minus the spacing that must come before each."""
    offsets = _offsets(spacing)
    blocks: list[list[float]] = []  # [sum, count] of targets pooled to one value
    for w, o in zip(wanted, offsets, strict=True):
        blocks.append([w - o, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    pooled = [total / count for total, count in blocks for _ in range(int(count))]
    return [p + o for p, o in zip(pooled, offsets, strict=True)]


def _edge_points(
    layers: _Layers,
    chain: list[int],
    y: dict[int, float],
    boxes: dict[str, Box],
    left: list[float],
    columns: list[float],
) -> list[tuple[float, float]]:
    """From the task's right side to the dep's left side, straight across each layer in
    between (`left` and `columns`: where those layers start, and their widths). Edges
    leave and enter a node at ports spread over its side, in the order of where they
    come from, so that arrowheads do not pile up."""
    first, last = chain[0], chain[-1]
    start = boxes[layers.vertices[first] or ""]
    end = boxes[layers.vertices[last] or ""]
    points = [(start.x + start.width, _port(start, chain[1], layers.down[first], y))]
    for v, x, w in zip(chain[1:-1], left, columns, strict=False):
        points += [(x, y[v]), (x + w, y[v])]
    points.append((end.x, _port(end, chain[-2], layers.up[last], y)))
    return points


def _port(box: Box, other: int, all_others: list[int], y: dict[int, float]) -> float:
    ranked = sorted(all_others, key=lambda v: (y[v], v))
    return box.y + box.height * (ranked.index(other) + 1) / (len(ranked) + 1)


# ------------------------------------------------------------------------------ drawing


def _svg(
    layout: Layout,
    graph: Graph,
    labels: dict[str, tuple[str, str]],
    statuses: dict[str, tuple[str, float]],
    path: list[str],
) -> str:
    legend, legend_height = _legend(max(layout.width, 640.0))
    shift = legend_height + MARGIN
    width, height = max(layout.width, 640.0), layout.height + shift
    on_path = set(path)
    # (task, dep): each task of the path waited for the one before it
    critical_edges = {(b, a) for a, b in pairwise(path)}
    parts = [
        f'<svg viewBox="0 0 {_num(width)} {_num(height)}" width="{_num(width)}" '
        f'height="{_num(height)}" font-family="{_esc(FONT)}" role="img" '
        'aria-label="the task graph">',
        "<defs>",
        _arrowhead("arrow", EDGE),
        _arrowhead("arrow-critical", CRITICAL),
        "</defs>",
        legend,
        f'<g class="graph" transform="translate(0 {_num(shift)})">',
    ]
    # Critical edges last, so that they are drawn over the others.
    for edge in sorted(layout.edges, key=lambda e: (e in critical_edges, e)):
        parts.append(_edge(edge, layout.edges[edge], edge in critical_edges))
    for name in sorted(layout.boxes):
        status = statuses[name][0] if name in statuses else NEVER_RAN
        summary = graph.tasks[name].summary
        parts.append(
            _node(name, layout.boxes[name], labels[name], status, summary, name in on_path)
        )
    parts += ["</g>", "</svg>"]
    return "\n".join(parts)


def _arrowhead(marker_id: str, colour: str) -> str:
    return (
        f'<marker id="{marker_id}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" '
        f'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto">'
        f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
    )


def _edge(edge: tuple[str, str], points: list[tuple[float, float]], critical: bool) -> str:
    (x, y), rest = points[0], points[1:]
    d = [f"M{_num(x)},{_num(y)}"]
    for nx, ny in rest:
        if ny == y:
            d.append(f"L{_num(nx)},{_num(ny)}")
        else:  # an S-curve that leaves and arrives horizontally
            mid = (x + nx) / 2
            d.append(f"C{_num(mid)},{_num(y)} {_num(mid)},{_num(ny)} {_num(nx)},{_num(ny)}")
        x, y = nx, ny
    colour, width, marker = (
        (CRITICAL, "2.5", "arrow-critical") if critical else (EDGE, "1.2", "arrow")
    )
    task, dep = edge
    return (
        f'<path class="edge{" critical" if critical else ""}" data-task="{_esc(task)}" '
        f'data-dep="{_esc(dep)}" d="{" ".join(d)}" fill="none" stroke="{colour}" '
        f'stroke-width="{width}" marker-end="url(#{marker})">'
        f"<title>{_esc(f'{task} depends on {dep}')}</title></path>"
    )


def _node(
    name: str, box: Box, label: tuple[str, str], status: str, summary: str, critical: bool
) -> str:
    fill, stroke, dashed, _ = STATUS_STYLES.get(status, STATUS_STYLES[NEVER_RAN])
    if critical:
        stroke = CRITICAL
    hover = [name, f"last run: {label[1]}" if status != NEVER_RAN else NEVER_RAN]
    hover += [summary] if summary else []
    if critical:
        hover.append("on the critical path of the last run")
    cx = box.x + box.width / 2
    return (
        f'<g class="task{" critical" if critical else ""}" data-task="{_esc(name)}" '
        f'data-status="{_esc(status)}">'
        f"<title>{_esc(chr(10).join(hover))}</title>"
        f'<rect x="{_num(box.x)}" y="{_num(box.y)}" width="{_num(box.width)}" '
        f'height="{_num(box.height)}" rx="8" fill="{fill}" stroke="{stroke}" '
        f'stroke-width="{3 if critical else 1.5}"{DASHES if dashed else ""}/>'
        f'<text x="{_num(cx)}" y="{_num(box.y + 18)}" text-anchor="middle" '
        f'font-size="{NAME_SIZE}" font-weight="bold" fill="#1a1a1a">{_esc(label[0])}</text>'
        f'<text x="{_num(cx)}" y="{_num(box.y + 33)}" text-anchor="middle" '
        f'font-size="{DETAIL_SIZE}" fill="#444">{_esc(label[1])}</text>'
        "</g>"
    )


def _legend(width: float) -> tuple[str, float]:
    """The legend, in rows that fit `width`, and its height: a swatch per status, the
    critical path's outline, and which way an arrow points."""
    swatches = [(STATUS_STYLES[s], 1.5) for s in STATUS_STYLES]
    swatches.append((("#ffffff", CRITICAL, False, "on the critical path of the last run"), 3))
    items = [
        (
            f'<rect x="0" y="0" width="24" height="14" rx="4" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="{stroke_width}"{DASHES if dashed else ""}/>',
            text,
        )
        for (fill, stroke, dashed, text), stroke_width in swatches
    ]
    arrow = f'<path d="M0,7 h24" stroke="{EDGE}" stroke-width="1.2" marker-end="url(#arrow)"/>'
    items.append((arrow, "a → b: task a depends on task b"))
    parts, x, y = ['<g class="legend" font-size="12">'], MARGIN, MARGIN
    for swatch, text in items:
        item_width = 30 + _columns(text) * 7.4 + 18
        if x + item_width > width - MARGIN and x > MARGIN:
            x, y = MARGIN, y + 22
        parts.append(
            f'<g transform="translate({_num(x)} {_num(y)})">{swatch}'
            f'<text x="30" y="11" fill="#333">{_esc(text)}</text></g>'
        )
        x += item_width
    parts.append("</g>")
    return "\n".join(parts), y + 14


def _html(title: str, summary: str, svg: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)}</title>
<style>
body {{ margin: 16px; font-family: {FONT}; color: #1a1a1a; background: #fff; }}
h1 {{ font-size: 16px; margin: 0 0 4px; }}
p {{ font-size: 13px; margin: 0 0 8px; }}
.picture {{ overflow: auto; }}
.task {{ cursor: default; }}
</style>
</head>
<body>
<h1>{_esc(title)}</h1>
<p>{_esc(summary)}</p>
<div class="picture">
{svg}
</div>
</body>
</html>
"""


def _summary(order: list[str], statuses: dict[str, tuple[str, float]], path: list[str]) -> str:
    counts: dict[str, int] = {}
    for name in order:
        status = statuses[name][0] if name in statuses else NEVER_RAN
        counts[status] = counts.get(status, 0) + 1
    known = [s for s in STATUS_STYLES if s in counts] + sorted(set(counts) - set(STATUS_STYLES))
    text = f"{len(order)} task{'s' if len(order) != 1 else ''}: "
    text += ", ".join(f"{counts[s]} {s}" for s in known) + "."
    if path:
        from .ui import _dur

        total = sum(statuses[n][1] for n in path if n in statuses)
        # Commas, not arrows: in the picture an arrow points from a task to its dep.
        text += f" Critical path of the last run ({_dur(total)}), in the order the tasks ran: "
        text += ", ".join(path) + "."
    return text


# ------------------------------------------------------------------------------ text


def _detail(status: tuple[str, float] | None) -> str:
    """The node's second line: the last status and how long it took."""
    if status is None:
        return NEVER_RAN
    if status[0] == "skipped":  # it did not run: its recorded time means nothing
        return "skipped"
    from .ui import _dur

    return f"{status[0]} · {_dur(status[1])}"


def _node_width(name: str, detail: str) -> float:
    text = max(_columns(name) * NAME_CHAR, _columns(detail) * DETAIL_CHAR)
    return max(NODE_MIN_WIDTH, round(text + 2 * NODE_PAD))


def _columns(text: str) -> int:
    """How many monospace cells `text` takes: wide (East Asian) characters take two,
    combining marks none."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def _esc(text: str) -> str:
    """Text for XML and HTML alike: markup characters escaped, and the characters XML 1.0
    forbids (a docstring could hold a form feed) dropped."""
    return html.escape("".join(c for c in text if _xml_char(c)), quote=True)


def _xml_char(c: str) -> bool:
    o = ord(c)
    return c in "\t\n\r" or (0x20 <= o <= 0xD7FF) or (0xE000 <= o <= 0xFFFD) or o >= 0x10000


def _num(x: float) -> str:
    """A coordinate, rounded so that the page does not change with float noise."""
    text = f"{round(x, 1) + 0.0:.1f}"  # + 0.0: no "-0"
    return text[:-2] if text.endswith(".0") else text
