"""The initiative page's voting panel: ``{% load voting %}{% voting_panel %}``.

Renders with the page's ``initiative``, ``user`` and ``request``: the latest round (ballot,
who has voted, or the result), earlier rounds, and the chair's form to open one. It fetches
its own data, with the same context builder as the round's page and its HTMX answers.
"""

from __future__ import annotations

from django import template

from ..forms_voting import RoundOpenForm
from ..rules import can_open_round
from ..selectors_voting import initiative_rounds
from ..views_voting import round_context
from ..voting import board_members

register = template.Library()


@register.inclusion_tag("initiatives/voting/_panel.html", takes_context=True)
def voting_panel(context) -> dict:
    request, initiative = context["request"], context["initiative"]
    rounds = initiative_rounds(initiative)
    data: dict = {"initiative": initiative, "view": None, "earlier": rounds[1:]}
    if rounds:
        data.update(round_context(request, rounds[0]))
        data["earlier"] = rounds[1:]
    can_open = can_open_round(request.user, initiative)
    data["can_open"] = can_open
    if can_open:
        eligible = board_members(initiative.forum_id).count()
        meeting = request.GET.get("meeting", "")
        data["open_form"] = RoundOpenForm(
            board_id=initiative.forum_id,
            eligible=eligible,
            initial={"meeting": meeting} if meeting.isdigit() else None,
            auto_id="id_open_%s",
        )
        data["eligible"] = eligible
    # The page's token (an inclusion tag's context is new).
    if context.get("csrf_token") is not None:
        data["csrf_token"] = context["csrf_token"]
    data["request"] = request
    data["user"] = request.user
    return data
