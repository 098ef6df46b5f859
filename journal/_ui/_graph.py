"""A stage's dependency graph as an SVG drawn on the server.

The layout is layered (Sugiyama: layers by dependency, crossings reduced by ordering within
layers, long edges routed through dummy points), computed by grandalf; each connected
component is laid out on its own and placed side by side, and resources that depend on
nothing and that nothing depends on are packed in rows below. Dependencies sit above what
depends on them (project, then database, then connection). The SVG links every node to its
resource page; colours come from the stylesheet by status class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from grandalf.graphs import Edge, Graph, Vertex
from grandalf.layouts import SugiyamaLayout

__all__ = ["Node", "render_svg"]

CHAR_W: Final = 7.2
NODE_H: Final = 40.0
PAD: Final = 24.0
GAP: Final = 40.0
#: above this many nodes in one component the layout skips crossing reduction rounds
BIG: Final = 400


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
    graph = Graph(list(verts.values()), edges)
    boxes: dict[str, tuple[float, float, float]] = {}
    lines: list[list[tuple[float, float]]] = []
    x0 = PAD
    height = PAD
    singles: list[str] = []
    for comp in sorted(graph.C, key=lambda c: -len(c.sV)):
        if len(comp.sV) == 1:
            singles.append(next(iter(comp.sV)).data)
            continue
        sug = SugiyamaLayout(comp)
        sug.init_all()
        sug.draw(1 if len(comp.sV) > BIG else 3)
        xs = [v.view.xy[0] - v.view.w / 2 for v in comp.sV]
        xe = [v.view.xy[0] + v.view.w / 2 for v in comp.sV]
        ys = [v.view.xy[1] - v.view.h / 2 for v in comp.sV]
        ye = [v.view.xy[1] + v.view.h / 2 for v in comp.sV]
        dx, dy = x0 - min(xs), PAD - min(ys)
        for v in comp.sV:
            cx, cy = v.view.xy
            boxes[v.data] = (cx - v.view.w / 2 + dx, cy - v.view.h / 2 + dy, v.view.w)
        for e in comp.sE:
            pts = list(e.view.points or [e.v[0].view.xy, e.v[1].view.xy])
            # from the bottom of the dependency to the top of its dependent
            src, dst = e.v[0].view, e.v[1].view
            pts[0] = (src.xy[0], src.xy[1] + src.h / 2)
            pts[-1] = (dst.xy[0], dst.xy[1] - dst.h / 2)
            lines.append([(px + dx, py + dy) for px, py in pts])
        x0 += max(xe) - min(xs) + GAP
        height = max(height, max(ye) - min(ys) + 2 * PAD)
    width = max(x0 - GAP + PAD, 2 * PAD)
    if singles:
        row_w = max(width, 900.0)
        x, y, row_h = PAD, height + (GAP if boxes else 0), NODE_H
        for rid in sorted(singles):
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
