"""The initiative page's support and attachments panels, and a row of the support queue.

``{% load support %}{% support_panel %}`` and ``{% attachments_panel %}`` render with the
page's ``initiative`` and ``user``; the views that answer the panels' forms render the same
templates from the same context builders, so the page and an HTMX swap never differ.
"""

from __future__ import annotations

from django import template

from ..attachments import initiative_attachments, type_label
from ..forms_support import AttachmentForm, SupportAnswerForm, SupportRequestForm
from ..support import initiative_support_requests

register = template.Library()


def _name(user) -> str:
    if user is None:
        return ""
    return user.get_full_name() or user.get_username()


def _csrf(token) -> dict:
    """The page's token for an inclusion tag (its context is new); a view's render() adds its
    own, which a None here would hide."""
    return {"csrf_token": token} if token is not None else {}


def support_panel_context(
    *,
    user,
    initiative,
    form: SupportRequestForm | None = None,
    note: str = "",
    refusal: str = "",
    csrf_token=None,
) -> dict:
    requests = []
    for item in initiative_support_requests(initiative):
        item.requested_by_name = _name(item.requested_by)
        item.taken_by_name = _name(item.taken_by)
        requests.append(item)
    return {
        "initiative": initiative,
        "requests": requests,
        "can_ask": user.has_perm("initiatives.add_supportrequest", initiative),
        "can_see_queue": user.has_perm("initiatives.view_support_queue"),
        "form": form if form is not None else SupportRequestForm(auto_id="id_support_%s"),
        "note": note,
        "refusal": refusal,
        **_csrf(csrf_token),
    }


def attachments_panel_context(
    *,
    user,
    initiative,
    form: AttachmentForm | None = None,
    note: str = "",
    refusal: str = "",
    csrf_token=None,
) -> dict:
    rows = []
    for attachment in initiative_attachments(initiative):
        attachment.initiative = initiative  # the permission reads it: no query per row
        rows.append(
            {
                "attachment": attachment,
                "type_label": type_label(attachment),
                "uploaded_by_name": _name(attachment.uploaded_by),
                "can_delete": user.has_perm("initiatives.delete_attachment", attachment),
            }
        )
    return {
        "initiative": initiative,
        "rows": rows,
        "any_delete": any(row["can_delete"] for row in rows),
        "can_add": user.has_perm("initiatives.add_attachment", initiative),
        "form": form if form is not None else AttachmentForm(auto_id="id_attachment_%s"),
        "note": note,
        "refusal": refusal,
        **_csrf(csrf_token),
    }


def support_row_context(
    *,
    user,
    support_request,
    form: SupportAnswerForm | None = None,
    note: str = "",
    show: str = "",
    csrf_token=None,
) -> dict:
    support_request.requested_by_name = _name(support_request.requested_by)
    support_request.taken_by_name = _name(support_request.taken_by)
    return {
        "item": {
            "r": support_request,
            "can_take": user.has_perm("initiatives.take_supportrequest", support_request),
            "can_release": user.has_perm("initiatives.release_supportrequest", support_request),
            "can_answer": user.has_perm("initiatives.answer_supportrequest", support_request),
            "form": form
            if form is not None
            else SupportAnswerForm(auto_id=f"id_answer_{support_request.pk}_%s"),
            "note": note,
        },
        "show": show,
        **_csrf(csrf_token),
    }


@register.inclusion_tag("initiatives/support/_panel.html", takes_context=True)
def support_panel(context, initiative=None):
    return support_panel_context(
        user=context["user"],
        initiative=initiative or context["initiative"],
        csrf_token=context.get("csrf_token"),
    )


@register.inclusion_tag("initiatives/support/_attachments.html", takes_context=True)
def attachments_panel(context, initiative=None):
    return attachments_panel_context(
        user=context["user"],
        initiative=initiative or context["initiative"],
        csrf_token=context.get("csrf_token"),
    )
