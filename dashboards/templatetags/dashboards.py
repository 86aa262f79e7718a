"""Icons, numbers and links for the dashboard templates."""

from __future__ import annotations

from functools import lru_cache

from django import template
from django.http import QueryDict
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from dashboards import charts
from measures.spc import COLOURS, PointClass

register = template.Library()

GREY = COLOURS[PointClass.COMMON]
BLUE = COLOURS[PointClass.IMPROVEMENT]
ORANGE = COLOURS[PointClass.CONCERN]
PURPLE = COLOURS[PointClass.NEITHER]

#: Making Data Count variation icons: colour, letter, meaning.
VARIATION = {
    "common_cause": (GREY, "", _("Common cause variation")),
    "improvement_high": (BLUE, "H", _("Special cause of improvement: higher")),
    "improvement_low": (BLUE, "L", _("Special cause of improvement: lower")),
    "concern_high": (ORANGE, "H", _("Special cause of concern: higher")),
    "concern_low": (ORANGE, "L", _("Special cause of concern: lower")),
    "neither_high": (PURPLE, "H", _("Special cause: higher (neither direction is better)")),
    "neither_low": (PURPLE, "L", _("Special cause: lower (neither direction is better)")),
}
#: Making Data Count assurance icons.
ASSURANCE = {
    "consistent_pass": (BLUE, "P", _("The target will be met consistently")),
    "consistent_fail": (ORANGE, "F", _("The target will be missed consistently")),
    "hit_and_miss": (GREY, "", _("The target will be met in some periods and missed in others")),
}


def _shapes(kind: str, colour: str, letter: str) -> str:
    """The inside of a Making Data Count icon: a ring in the class colour with H/L (variation)
    or P/F (assurance), the common-cause zigzag, or the hit-and-miss zigzag across a dashed
    target line. Presentation attributes only: the CSP forbids inline styles."""
    ring = f'<circle cx="20" cy="20" r="17.5" fill="#FFFFFF" stroke="{colour}" stroke-width="3"/>'
    if letter:
        return ring + (
            f'<text x="20" y="26.5" text-anchor="middle" font-family="system-ui, sans-serif" '
            f'font-size="18" font-weight="700" fill="{colour}">{letter}</text>'
        )
    if kind == "variation":
        return ring + (
            f'<polyline points="8,22 13,15 18,25 23,14 28,24 33,17" fill="none" '
            f'stroke="{colour}" stroke-width="2.5" stroke-linejoin="round"/>'
        )
    return ring + (
        '<line x1="6" y1="20" x2="34" y2="20" stroke="#C00000" stroke-width="2.5" '
        'stroke-dasharray="4 2.5"/>'
        f'<polyline points="9,27 14,12 20,28 26,12 31,27" fill="none" stroke="{colour}" '
        'stroke-width="2" stroke-linejoin="round"/>'
    )


@register.simple_tag
def icon_sprite():
    """Every icon once, as symbols the icons on the page point at: a matrix of hundreds of
    cells carries a reference per icon instead of its drawing."""
    symbols = [
        f'<symbol id="mdc-{kind}-{key}" viewBox="0 0 40 40">{_shapes(kind, colour, letter)}</symbol>'
        for kind, table in (("variation", VARIATION), ("assurance", ASSURANCE))
        for key, (colour, letter, _label) in table.items()
    ]
    return mark_safe(  # noqa: S308 - built from the constants above
        '<svg class="sprite" aria-hidden="true" focusable="false" width="0" height="0">'
        + "".join(symbols)
        + "</svg>"
    )


@lru_cache(maxsize=256)
def _icon(kind: str, key: str, size: int, language: str) -> str:
    table = VARIATION if kind == "variation" else ASSURANCE
    if key not in table:
        return ""
    label = escape(str(table[key][2]))
    return (
        f'<svg class="icon icon-{kind}" role="img" aria-label="{label}" width="{size}" '
        f'height="{size}" viewBox="0 0 40 40" focusable="false"><title>{label}</title>'
        f'<use href="#mdc-{kind}-{key}"/></svg>'
    )


@register.simple_tag
def variation_icon(key: str, size: int = 36):
    """The Making Data Count variation icon (a reference into :func:`icon_sprite`), with its
    meaning as its text alternative."""
    return mark_safe(_icon("variation", key or "", size, get_language() or ""))  # noqa: S308


@register.simple_tag
def assurance_icon(key: str, size: int = 36):
    """The Making Data Count assurance icon."""
    return mark_safe(_icon("assurance", key or "", size, get_language() or ""))  # noqa: S308


@register.filter
def figure(value, measure):
    """A value with the measure's decimals and unit, in the current language."""
    return charts.with_unit(value, measure)


@register.filter
def number(value, measure):
    """A value with the measure's decimals, without its unit (a column heading has it)."""
    return charts.fmt(value, measure)


@register.filter
def count(value):
    return charts.fmt(value, places=0)


@register.filter
def period(value, grain):
    return charts.period_label(value, grain) if value else "–"


@register.simple_tag(takes_context=True)
def query(context, **changes):
    """The current query string with some parameters changed ('' removes one)."""
    params: QueryDict = context["request"].GET.copy()
    for key, value in changes.items():
        if value in ("", None):
            params.pop(key, None)
        else:
            params[key] = value
    encoded = params.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.simple_tag(takes_context=True)
def sort_query(context, code: str):
    """The link of a column header: sort by it, again to reverse."""
    request = context["request"]
    descending = request.GET.get("sort") == code and request.GET.get("dir") != "desc"
    params = request.GET.copy()
    params["sort"] = code
    params["dir"] = "desc" if descending else "asc"
    return "?" + params.urlencode()


@register.simple_tag(takes_context=True)
def sort_state(context, code: str) -> str:
    """aria-sort of a column header."""
    request = context["request"]
    if request.GET.get("sort") != code:
        return "none"
    return "descending" if request.GET.get("dir") == "desc" else "ascending"
