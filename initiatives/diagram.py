"""The workflow drawn as SVG, server-side, from ``workflow.TRANSITIONS`` (the help page's).

States are boxes in rows by the level they are held at (division board, department group,
unit forum; a row of its own for states held at several levels), read off the table: the
kinds of forum a state is left from, and where the steps into it take the initiative. Each
step is an arrow from each of its source states to its target, numbered as the table on the
page numbers it. No script and no inline style (the Content-Security-Policy forbids both):
the page's stylesheet styles the classes.
"""

from __future__ import annotations

import math
import textwrap

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from forums.enums import ForumKind

from . import workflow
from .enums import State
from .workflow import Move

BOX_W, BOX_H = 172, 58
GAP_X, GAP_Y = 58, 92
LEFT, TOP = 176, 36
#: Rows from the top: the board above, units at the bottom, states of several levels last.
ROWS: tuple[str | None, ...] = (
    ForumKind.DIVISION_BOARD,
    ForumKind.DEPARTMENT_GROUP,
    ForumKind.UNIT_FORUM,
    None,
)


_LANDS = {
    Move.DEPARTMENT: ForumKind.DEPARTMENT_GROUP,
    Move.BOARD: ForumKind.DIVISION_BOARD,
    Move.UNIT_FORUM: ForumKind.UNIT_FORUM,
}


def _reachable() -> tuple[dict[str, set[str]], dict[str, int]]:
    """Which (state, kind of forum) pairs the table can reach from logging, and each state's
    fewest steps from the entry: a walk over the table (a return goes to any kind of forum
    a step sends initiatives up or down from)."""
    senders: dict[str, set[str]] = {}
    for step in workflow.TRANSITIONS:
        if step.move in _LANDS:
            senders.setdefault(_LANDS[step.move], set()).update(step.at)
    kinds: dict[str, set[str]] = {state: set() for state in State}
    depth = {str(workflow.ENTRY_STATE): 0}
    frontier = [(str(workflow.ENTRY_STATE), kind, 0) for kind in sorted(workflow.LOG_AT)]
    for _state, kind, _d in frontier:
        kinds[workflow.ENTRY_STATE].add(kind)
    while frontier:
        state, kind, d = frontier.pop(0)
        for step in workflow.transitions_from(state, kind):
            if step.move == Move.STAY:
                landing = {kind}
            elif step.move == Move.PREVIOUS:
                landing = senders.get(kind, set())
            else:
                landing = {_LANDS[step.move]}
            for there in landing:
                if there not in kinds[step.target]:
                    kinds[step.target].add(there)
                    frontier.append((str(step.target), there, d + 1))
            depth.setdefault(str(step.target), d + 1)
    return kinds, depth


def state_levels() -> dict[str, frozenset[str]]:
    """Per state, the kinds of forum an initiative can sit in while in that state."""
    kinds, _depth = _reachable()
    return {state: frozenset(k) for state, k in kinds.items()}


def row_of(levels: frozenset[str]) -> str | None:
    return next(iter(levels)) if len(levels) == 1 and next(iter(levels)) in ROWS else None


def layout() -> dict[str, tuple[float, float]]:
    """The centre of each state's box."""
    kinds, depth = _reachable()
    rows: dict[str | None, list[str]] = {row: [] for row in ROWS}
    for state in State:  # the enum's order is the workflow's reading order
        rows[row_of(frozenset(kinds[state]))].append(state)
    centres = {}
    for r, row in enumerate(ROWS):
        column = -1
        for state in rows[row]:
            # Further right the more steps it lies from logging, never on top of another.
            column = max(depth.get(state, column + 1), column + 1)
            c = column
            x = LEFT + c * (BOX_W + GAP_X) + BOX_W / 2
            y = TOP + r * (BOX_H + GAP_Y) + BOX_H / 2
            centres[state] = (x, y)
    return centres


def _clip(centre, towards) -> tuple[float, float]:
    """Where the ray from a box's centre towards a point leaves the box."""
    dx, dy = towards[0] - centre[0], towards[1] - centre[1]
    if dx == 0 and dy == 0:
        return centre
    t = min(
        (BOX_W / 2) / abs(dx) if dx else math.inf,
        (BOX_H / 2) / abs(dy) if dy else math.inf,
    )
    return centre[0] + dx * t, centre[1] + dy * t


def _edge(a, b, same_row: bool) -> tuple[str, tuple[float, float]]:
    """A curved arrow from box a to box b: its path and where its number goes."""
    (x1, y1), (x2, y2) = a, b
    dx, dy = x2 - x1, y2 - y1
    length = math.hypot(dx, dy)
    adjacent = same_row and length <= BOX_W + GAP_X + 1
    bend = 0.08 if adjacent else (0.3 if same_row else 0.12)
    # Bending to the left of the direction of travel keeps a step and its reverse apart.
    nx, ny = dy / length, -dx / length
    cx, cy = (x1 + x2) / 2 + nx * bend * length, (y1 + y2) / 2 + ny * bend * length
    sx, sy = _clip(a, (cx, cy))
    ex, ey = _clip(b, (cx, cy))
    mid = (0.25 * sx + 0.5 * cx + 0.25 * ex, 0.25 * sy + 0.5 * cy + 0.25 * ey)
    return f"M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {ex:.1f},{ey:.1f}", mid


def _loop(centre) -> tuple[str, tuple[float, float]]:
    """A step from a state back to itself: a loop over the box's top right corner."""
    x, y = centre[0] + BOX_W / 2 - 30, centre[1] - BOX_H / 2
    path = f"M{x:.1f},{y:.1f} C{x - 10:.1f},{y - 44:.1f} {x + 40:.1f},{y - 44:.1f} {x + 26:.1f},{y:.1f}"
    return path, (x + 13, y - 34)


def _text(label: str, x: float, y: float, *, width: int = 22, css: str = "wf-label") -> str:
    lines = textwrap.wrap(label, width=width)[:3] or [""]
    first = y - (len(lines) - 1) * 8
    spans = "".join(
        f'<tspan x="{x:.1f}" y="{first + i * 16:.1f}">{escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    return f'<text class="{css}" text-anchor="middle" dominant-baseline="middle">{spans}</text>'


def workflow_svg() -> SafeString:
    """The diagram as an inline ``<svg>`` element."""
    centres = layout()
    width = max(x for x, _y in centres.values()) + BOX_W / 2 + 16
    height = TOP + len(ROWS) * (BOX_H + GAP_Y) - GAP_Y + 24
    parts = [
        f'<svg class="wf-diagram" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} '
        f'{height:.0f}" role="img" aria-labelledby="wf-title wf-desc">',
        f'<title id="wf-title">{escape(_("The improvement workflow"))}</title>',
        '<desc id="wf-desc">'
        + escape(
            _(
                "Each box is a state, in the row of the level it is held at; each numbered "
                "arrow is a step of the table below, from a state it can be taken in to the "
                "state it leads to."
            )
        )
        + "</desc>",
        '<defs><marker id="wf-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path class="wf-arrowhead" '
        'd="M0,0 L10,5 L0,10 z"/></marker></defs>',
    ]
    row_names = {
        ForumKind.DIVISION_BOARD: ForumKind.DIVISION_BOARD.label,
        ForumKind.DEPARTMENT_GROUP: ForumKind.DEPARTMENT_GROUP.label,
        ForumKind.UNIT_FORUM: ForumKind.UNIT_FORUM.label,
        None: _("At several levels"),
    }
    for r, row in enumerate(ROWS):
        y = TOP + r * (BOX_H + GAP_Y)
        parts.append(
            f'<rect class="wf-band" x="4" y="{y - 18:.1f}" width="{width - 8:.0f}" '
            f'height="{BOX_H + 36:.0f}" rx="6"/>'
        )
        parts.append(_text(str(row_names[row]), 70, y + BOX_H / 2, width=16, css="wf-row"))

    # Arrows first, so the boxes lie over their ends.
    for number, step in enumerate(workflow.TRANSITIONS, start=1):
        label = str(step.label)
        for source in sorted(step.sources, key=list(State).index):
            if source == step.target:
                path, mid = _loop(centres[source])
            else:
                a, b = centres[source], centres[step.target]
                path, mid = _edge(a, b, same_row=a[1] == b[1])
            title = f"{number}. {label}: {State(source).label} → {State(step.target).label}"
            via = " wf-via" if step.via else ""
            if step.target in workflow.CLOSED:
                via += " wf-out"
            parts.append(
                f'<g class="wf-step{via}" data-step="{escape(step.name)}" '
                f'data-from="{escape(source)}" data-to="{escape(step.target)}">'
                f"<title>{escape(title)}</title>"
                f'<path class="wf-edge" d="{path}" marker-end="url(#wf-arrow)"/>'
                f'<circle class="wf-number" cx="{mid[0]:.1f}" cy="{mid[1]:.1f}" r="9"/>'
                f'<text class="wf-number-text" x="{mid[0]:.1f}" y="{mid[1]:.1f}" '
                f'text-anchor="middle" dominant-baseline="central">{number}</text></g>'
            )

    entry = centres[workflow.ENTRY_STATE]
    ex, ey = entry[0] - BOX_W / 2 - 34, entry[1]
    parts.append(
        f'<g class="wf-entry"><title>{escape(_("Logged: where every initiative starts"))}</title>'
        f'<circle cx="{ex:.1f}" cy="{ey:.1f}" r="7"/>'
        f'<path class="wf-edge" d="M{ex + 7:.1f},{ey:.1f} L{entry[0] - BOX_W / 2:.1f},{ey:.1f}" '
        'marker-end="url(#wf-arrow)"/></g>'
    )
    for state in State:
        x, y = centres[state]
        css = "wf-state"
        if state in workflow.TERMINAL:
            css += " wf-terminal"
        if state == workflow.ENTRY_STATE:
            css += " wf-start"
        parts.append(
            f'<g class="{css}" data-state="{escape(state)}">'
            f'<rect x="{x - BOX_W / 2:.1f}" y="{y - BOX_H / 2:.1f}" width="{BOX_W}" '
            f'height="{BOX_H}" rx="8"/>' + _text(str(State(state).label), x, y) + "</g>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text in it is escaped above
