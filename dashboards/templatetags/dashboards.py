"""Icons, numbers and links for the dashboard templates."""

from __future__ import annotations

from django import template
from django.http import QueryDict
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


@register.inclusion_tag("dashboards/_icon.html")
def variation_icon(key: str, size: int = 36):
    colour, letter, label = VARIATION.get(key or "", (None, "", ""))
    return {
        "key": key,
        "colour": colour,
        "letter": letter,
        "label": label,
        "size": size,
        "kind": "variation",
    }


@register.inclusion_tag("dashboards/_icon.html")
def assurance_icon(key: str, size: int = 36):
    colour, letter, label = ASSURANCE.get(key or "", (None, "", ""))
    return {
        "key": key,
        "colour": colour,
        "letter": letter,
        "label": label,
        "size": size,
        "kind": "assurance",
    }


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
