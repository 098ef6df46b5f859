"""A stage's dependency graph as an SVG drawn on the server.

The layout is layered (Sugiyama: layers by dependency, crossings reduced by ordering within
layers, long edges routed through dummy points), computed by grandalf; each connected
component is laid out on its own and placed side by side, and resources that depend on
nothing and that nothing depends on are packed in rows below. Dependencies sit above what
depends on them (project, then database, then connection). The SVG links every node to its
resource page; colours come from the stylesheet by status class.

A component of more than ``BIG`` resources (a loop that declares a thousand databases) is
laid out here instead, in linear time: layers by longest dependency path, each layer ordered
by its dependencies' positions and wrapped into rows of ``WRAP`` boxes, straight edges.
grandalf's graph construction checks connectivity in quadratic time, and a single layer a
thousand boxes wide could not be looked at anyway.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from grandalf.graphs import Edge, Vertex, graph_core
from grandalf.layouts import SugiyamaLayout

__all__ = ["Node", "render_svg"]

CHAR_W: Final = 7.2
NODE_H: Final = 40.0
PAD: Final = 24.0
GAP: Final = 40.0
#: above this many nodes in one component, the linear wrapped layout below replaces grandalf
BIG: Final = 300
WRAP: Final = 16


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    status: str  # ready | pending | failed | protected | absent
    deps: tuple[str, ...]


class _View:
    def __init__(self, w: float, h: float) -> None:
        self.w = w
        self.h = h
        self.xy: tuple[float, float] = (0.0, 0.0)


class _EdgeView:
    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []

    def setpath(self, pts: Sequence[Sequence[float]]) -> None:
        self.points = [(float(p[0]), float(p[1])) for p in pts]


def _type_label(node: Node) -> str:
    return node.type + (" · protected" if node.status == "protected" else "")


def _width(node: Node) -> float:
    return max(len(node.id) * CHAR_W, len(_type_label(node)) * CHAR_W * 0.92) + 24


def _components(nodes: Sequence[Node], by_id: dict[str, Node]) -> list[list[str]]:
    """Connected components (union-find), largest first: grandalf's own Graph merges them
    edge by edge in quadratic time."""
    parent = {n.id: n.id for n in nodes}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for n in nodes:
        for dep in n.deps:
            if dep in by_id:
                parent[find(dep)] = find(n.id)
    groups: dict[str, list[str]] = {}
    for n in nodes:
        groups.setdefault(find(n.id), []).append(n.id)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def _natural(text: str) -> list[tuple[int, int | str]]:
    """Sort key: db-2 before db-10."""
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text)]


Placed = dict[str, tuple[float, float, float]]
Routes = list[list[tuple[float, float]]]


def _sugiyama(ids: list[str], verts: dict[str, Vertex], edges: list[Edge]) -> tuple[Placed, Routes]:
    comp = graph_core([verts[i] for i in ids], edges)
    sug = SugiyamaLayout(comp)
    sug.init_all()
    sug.draw(3)
    placed: Placed = {}
    for v in comp.sV:
        cx, cy = v.view.xy
        placed[v.data] = (cx - v.view.w / 2, cy - v.view.h / 2, v.view.w)
    routes: Routes = []
    for e in comp.sE:
        pts = list(e.view.points or [e.v[0].view.xy, e.v[1].view.xy])
        # from the bottom of the dependency to the top of its dependent
        src, dst = e.v[0].view, e.v[1].view
        pts[0] = (src.xy[0], src.xy[1] + src.h / 2)
        pts[-1] = (dst.xy[0], dst.xy[1] - dst.h / 2)
        routes.append(pts)
    return placed, routes


def _wrapped(nodes: list[Node]) -> tuple[Placed, Routes]:
    by_id = {n.id: n for n in nodes}
    # longest-path layers, Kahn's order (the engine records no cycle; one would land on 0)
    deps = {n.id: {d for d in n.deps if d in by_id and d != n.id} for n in nodes}
    users: dict[str, list[str]] = {}
    for rid, ds in deps.items():
        for d in ds:
            users.setdefault(d, []).append(rid)
    waiting = {rid: len(ds) for rid, ds in deps.items()}
    layer = dict.fromkeys(by_id, 0)
    ready = [rid for rid, n in waiting.items() if n == 0]
    while ready:
        rid = ready.pop()
        for user in users.get(rid, []):
            layer[user] = max(layer[user], layer[rid] + 1)
            waiting[user] -= 1
            if waiting[user] == 0:
                ready.append(user)
    layers: dict[int, list[str]] = {}
    for rid in sorted(by_id):
        layers.setdefault(layer[rid], []).append(rid)
    width = max(_width(n) for n in nodes)
    placed: Placed = {}
    order: dict[str, float] = {}
    y = 0.0
    for k in sorted(layers):
        members = layers[k]
        members.sort(
            key=lambda r: (
                min((order[d] for d in by_id[r].deps if d in order), default=0.0),
                _natural(r),
            )
        )
        for i, rid in enumerate(members):
            row, col = divmod(i, WRAP)
            placed[rid] = (col * (width + 16), y + row * (NODE_H + 14), _width(by_id[rid]))
            order[rid] = i
        y += ((len(members) - 1) // WRAP + 1) * (NODE_H + 14) + GAP
    routes: Routes = []
    for n in nodes:
        x1, y1, w1 = placed[n.id]
        for dep in n.deps:
            if dep in placed and dep != n.id:
                x0, y0, w0 = placed[dep]
                routes.append([(x0 + w0 / 2, y0 + NODE_H), (x1 + w1 / 2, y1)])
    return placed, routes


def _layout(
    nodes: Sequence[Node],
) -> tuple[dict[str, tuple[float, float, float]], list[list[tuple[float, float]]], float, float]:
    """(id -> (x, y, width) of the box's top-left), edge polylines, total width, height."""
    by_id = {n.id: n for n in nodes}
    verts = {n.id: Vertex(n.id) for n in nodes}
    for n in nodes:
        verts[n.id].view = _View(_width(n), NODE_H)
    edges = []
    for n in nodes:
        for dep in n.deps:
            if dep in verts and dep != n.id:
                edge = Edge(verts[dep], verts[n.id])
                edge.view = _EdgeView()
                edges.append(edge)
    boxes: dict[str, tuple[float, float, float]] = {}
    lines: list[list[tuple[float, float]]] = []
    x0 = PAD
    height = PAD
    singles: list[str] = []
    components = _components(nodes, by_id)
    where = {rid: k for k, ids in enumerate(components) for rid in ids}
    comp_edges: dict[int, list[Edge]] = {}
    for e in edges:
        comp_edges.setdefault(where[e.v[0].data], []).append(e)
    for k, ids in enumerate(components):
        if len(ids) == 1:
            singles.append(ids[0])
            continue
        if len(ids) > BIG:
            placed, routes = _wrapped([by_id[i] for i in ids])
        else:
            placed, routes = _sugiyama(ids, verts, comp_edges.get(k, []))
        xs = [x for x, _y, _w in placed.values()]
        xe = [x + w for x, _y, w in placed.values()]
        ys = [y for _x, y, _w in placed.values()]
        ye = [y + NODE_H for _x, y, _w in placed.values()]
        dx, dy = x0 - min(xs), PAD - min(ys)
        for rid, (x, y, w) in placed.items():
            boxes[rid] = (x + dx, y + dy, w)
        lines += [[(px + dx, py + dy) for px, py in pts] for pts in routes]
        x0 += max(xe) - min(xs) + GAP
        height = max(height, max(ye) - min(ys) + 2 * PAD)
    width = max(x0 - GAP + PAD, 2 * PAD)
    if singles:
        row_w = max(width, 900.0)
        x, y, row_h = PAD, height + (GAP if boxes else 0), NODE_H
        for rid in sorted(singles, key=_natural):
            w = _width(by_id[rid])
            if x + w > row_w - PAD and x > PAD:
                x, y = PAD, y + row_h + 16
            boxes[rid] = (x, y, w)
            x += w + 16
        width = max(width, row_w)
        height = y + row_h + PAD
    return boxes, lines, width, height


def render_svg(nodes: Sequence[Node], href: Callable[[str], str]) -> str:
    """The graph as an inline ``<svg>`` element; ``href(id)`` is each node's link."""
    if not nodes:
        return '<p class="empty">This stage holds no resources.</p>'
    boxes, lines, width, height = _layout(nodes)
    out: list[str] = [
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="dependency graph" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'class="arrowhead"/></marker></defs>',
    ]
    for pts in lines:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        out.append(f'<polyline class="edge" points="{path}" marker-end="url(#arrow)"/>')
    for node in sorted(nodes, key=lambda n: n.id):
        x, y, w = boxes[node.id]
        label = escape(node.id)
        out.append(
            f'<a class="node status-{escape(node.status)}" href="{escape(href(node.id))}" '
            f'data-resource="{label}">'
            f"<title>{label} ({escape(node.type)}): {escape(node.status)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{NODE_H:.0f}" rx="6"/>'
            f'<text x="{x + 12:.1f}" y="{y + 17:.1f}" class="id">{label}</text>'
            f'<text x="{x + 12:.1f}" y="{y + 32:.1f}" class="type">'
            f"{escape(_type_label(node))}</text></a>"
        )
    out.append("</svg>")
    return "".join(out)
