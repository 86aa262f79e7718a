"""The initiative page's adoptions panel: ``{% load scale_up %}{% adoptions_panel %}``.

Renders with the page's ``initiative``, ``user`` and ``request``: the scale-up plan, each
unit's adoption (state, how the unit adapted it, the form for those who may update it),
progress, why the spread cannot be marked complete yet, the forms to make the plan or spread
in the department, and the effect evaluation. It fetches its own data
(``views_scale_up.panel_context``, which the HTMX answers use too).
"""

from __future__ import annotations

from django import template
from django.utils.formats import number_format

from ..views_scale_up import panel_context

register = template.Library()


@register.inclusion_tag("initiatives/scale_up/_panel.html", takes_context=True)
def adoptions_panel(context) -> dict:
    request, initiative = context["request"], context["initiative"]
    data = panel_context(request, initiative)
    # The page's token (an inclusion tag's context is new).
    if context.get("csrf_token") is not None:
        data["csrf_token"] = context["csrf_token"]
    data["request"] = request
    data["user"] = request.user
    return data


@register.filter
def effect_number(value) -> str:
    """A mean in the current language, one decimal; "–" for none."""
    if value is None:
        return "–"
    return number_format(round(value, 1), 1, use_l10n=True, force_grouping=True)


@register.filter
def effect_change(value) -> str:
    """A change with its sign (+1.5, −2.0); "–" for none."""
    if value is None:
        return "–"
    text = number_format(round(abs(value), 1), 1, use_l10n=True, force_grouping=True)
    if round(value, 1) == 0:
        return text
    return ("+" if value > 0 else "\u2212") + text
