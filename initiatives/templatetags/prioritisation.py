"""The initiative page's scores panel, and how scores are written on the pages."""

from __future__ import annotations

from django import template
from django.template.defaultfilters import floatformat

from ..prioritisation import scoring_forums
from ..views_prioritisation import score_block

register = template.Library()


@register.filter
def score(value) -> str:
    """A mean, median or weighted score with two decimals in the reader's format; "–" for
    none."""
    if value is None:
        return "–"
    return floatformat(float(value), 2)


@register.inclusion_tag("initiatives/prioritisation/panel.html", takes_context=True)
def scores_panel(context, initiative=None, user=None):
    """For each department group or board that has had the initiative (or scored it): its
    aggregate and, for its members while it scores the initiative, their scoring form."""
    initiative = initiative or context["initiative"]
    user = user or context["user"]
    request = context.get("request")
    here = request.get_full_path() if request is not None else ""
    return {
        "initiative": initiative,
        "blocks": [
            score_block(user, initiative, forum, next=here, level=3)
            for forum in scoring_forums(initiative)
        ],
        "csrf_token": context.get("csrf_token"),
        "request": request,
    }
