"""Pages of support requests and attachments. Thin: rules decide, services write.

- ``/support/``: the support unit's queue (open, taken by me, taken, done), where its members
  take, release and answer requests (HTMX swaps the request's card);
- the initiative page's two panels (``templates/initiatives/panels/support.html`` and
  ``attachments.html``): asking for support, attaching and deleting files (HTMX swaps the
  panel; without JavaScript a small page shows the form's errors);
- ``/attachments/<pk>/``: the download, for whoever may see the initiative (a 404 for anyone
  else), recorded in the audit log.

Objects are fetched through the visible querysets, so what one may not see is a 404; a refusal
of the service comes back with its message and the API's status (403, 409, 400).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from units.audit import audit_download

from .attachments import attachment_add, attachment_delete, attachment_response, visible_attachments
from .forms_support import AttachmentForm, SupportAnswerForm, SupportRequestForm
from .models import Attachment, Initiative, SupportRequest
from .rules import visible_initiatives
from .support import (
    QUEUE_DONE,
    QUEUE_MINE,
    QUEUE_OPEN,
    QUEUE_TAKEN,
    QUEUE_VIEWS,
    support_queue,
    support_queue_counts,
    support_request_create,
    support_request_done,
    support_request_release,
    support_request_take,
    visible_support_requests,
)
from .templatetags.support import (
    attachments_panel_context,
    support_panel_context,
    support_row_context,
)

QUEUE_PAGE_SIZE = 50

_STATUS_BY_CODE = {"not_permitted": 403, "not_found": 404, "stale": 409, "conflict": 409}


def _codes(error: ValidationError) -> set[str]:
    if hasattr(error, "error_dict"):
        return {e.code for errors in error.error_dict.values() for e in errors}
    return {e.code for e in error.error_list}


def refusal_status(error: ValidationError) -> int:
    """The status of a page that shows a service's refusal (as the API answers it)."""
    codes = _codes(error)
    for code in ("not_permitted", "not_found", "stale", "conflict"):
        if code in codes:
            return _STATUS_BY_CODE[code]
    return 400


def add_service_error(form, error: ValidationError) -> None:
    """A service's refusal shown next to the field it names (or above the form)."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def _initiative_or_404(request, pk: int) -> Initiative:
    return get_object_or_404(visible_initiatives(request.user).select_related("forum"), pk=pk)


def _initiative_url(initiative_id: int, panel: str) -> str:
    return reverse("initiatives:initiative", args=[initiative_id]) + f"#panel-{panel}"


# --- the support queue ----------------------------------------------------------------------


def _show(value: str) -> str:
    return value if value in QUEUE_VIEWS else QUEUE_OPEN


def _queue_url(show: str) -> str:
    return reverse("initiatives:support-queue") + "?" + urlencode({"show": _show(show)})


@require_GET
def support_queue_page(request):
    if not request.user.has_perm("initiatives.view_support_queue"):
        raise PermissionDenied(_("The support queue is for the members of the support unit."))
    show = _show(request.GET.get("show", ""))
    page = Paginator(support_queue(user=request.user, show=show), QUEUE_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    counts = support_queue_counts(user=request.user)
    labels = {
        QUEUE_OPEN: _("Open"),
        QUEUE_MINE: _("Taken by me"),
        QUEUE_TAKEN: _("Taken"),
        QUEUE_DONE: _("Done"),
    }
    tabs = [
        {
            "label": labels[key],
            "count": counts[key],
            "url": _queue_url(key),
            "current": key == show,
        }
        for key in QUEUE_VIEWS
    ]
    items = [
        support_row_context(user=request.user, support_request=item, show=show)["item"]
        for item in page
    ]
    context = {
        "tabs": tabs,
        "show": show,
        "show_label": labels[show],
        "items": items,
        "page": page,
    }
    return render(request, "initiatives/support/queue.html", context)


def _support_request_or_404(request, pk: int) -> SupportRequest:
    found = get_object_or_404(visible_support_requests(request.user), pk=pk)
    if not request.user.has_perm("initiatives.view_supportrequest", found):
        raise Http404
    return found


def _as_read(request, support_request: SupportRequest) -> SupportRequest:
    """The request as the person saw it: with the version their page showed (if it says)."""
    version = request.POST.get("version", "")
    if version.isdigit():
        support_request.version = int(version)
    return support_request


def _answer_row(
    request,
    support_request: SupportRequest,
    *,
    note: str,
    status: int,
    form: SupportAnswerForm | None = None,
) -> HttpResponse:
    """The request's card (HTMX), or back to the queue with the note (a plain form)."""
    show = _show(request.POST.get("show", ""))
    if request.htmx or (form is not None and status == 400):
        fresh = _support_request_or_404(request, support_request.pk)
        context = support_row_context(
            user=request.user, support_request=fresh, form=form, note=note, show=show
        )
        template = (
            "initiatives/support/_row.html" if request.htmx else "initiatives/support/answer.html"
        )
        return render(request, template, context, status=status)
    if status == 403:
        raise PermissionDenied(note)
    (messages.success if status < 300 else messages.error)(request, note)
    return redirect(_queue_url(show))


def _refusal_note(error: ValidationError) -> str:
    return " ".join(error.messages)


@require_POST
def support_request_take_view(request, pk: int):
    support_request = _as_read(request, _support_request_or_404(request, pk))
    try:
        support_request_take(user=request.user, request=support_request)
    except ValidationError as error:
        return _answer_row(
            request, support_request, note=_refusal_note(error), status=refusal_status(error)
        )
    return _answer_row(
        request, support_request, note=_("You took it: answer it when it is done."), status=200
    )


@require_POST
def support_request_release_view(request, pk: int):
    support_request = _as_read(request, _support_request_or_404(request, pk))
    try:
        support_request_release(user=request.user, request=support_request)
    except ValidationError as error:
        return _answer_row(
            request, support_request, note=_refusal_note(error), status=refusal_status(error)
        )
    return _answer_row(request, support_request, note=_("It is back in the queue."), status=200)


@require_POST
def support_request_answer_view(request, pk: int):
    support_request = _as_read(request, _support_request_or_404(request, pk))
    form = SupportAnswerForm(request.POST, auto_id=f"id_answer_{support_request.pk}_%s")
    if not form.is_valid():
        return _answer_row(request, support_request, note="", status=400, form=form)
    try:
        support_request_done(
            user=request.user, request=support_request, answer=form.cleaned_data["answer"]
        )
    except ValidationError as error:
        status = refusal_status(error)
        if status == 400:
            add_service_error(form, error)
            return _answer_row(request, support_request, note="", status=400, form=form)
        return _answer_row(request, support_request, note=_refusal_note(error), status=status)
    return _answer_row(
        request, support_request, note=_("Answered: the request is done."), status=200
    )


# --- asking for support (the initiative's panel) --------------------------------------------


@require_POST
def support_request_new(request, pk: int):
    initiative = _initiative_or_404(request, pk)
    form = SupportRequestForm(request.POST, auto_id="id_support_%s")
    status, note, refusal = 400, "", ""
    if form.is_valid():
        try:
            created = support_request_create(
                user=request.user,
                initiative=initiative,
                kind=form.cleaned_data["kind"],
                description=form.cleaned_data["description"],
            )
        except ValidationError as error:
            add_service_error(form, error)
            status = refusal_status(error)
            refusal = _refusal_note(error) if status == 403 else ""
        else:
            note = _("Your request went to %(forum)s.") % {"forum": created.support_forum}
            if not request.htmx:
                messages.success(request, note)
                return redirect(_initiative_url(initiative.pk, "support"))
            status, form = 200, None
    context = support_panel_context(
        user=request.user, initiative=initiative, form=form, note=note, refusal=refusal
    )
    template = (
        "initiatives/support/_panel.html"
        if request.htmx
        else "initiatives/support/request_new.html"
    )
    return render(request, template, context, status=status)


# --- attachments ----------------------------------------------------------------------------


def _attachment_or_404(request, pk: int) -> Attachment:
    found = get_object_or_404(visible_attachments(request.user), pk=pk)
    if not request.user.has_perm("initiatives.view_attachment", found):
        raise Http404
    return found


@require_POST
def attachment_new(request, pk: int):
    initiative = _initiative_or_404(request, pk)
    form = AttachmentForm(request.POST, request.FILES, auto_id="id_attachment_%s")
    status, note, refusal = 400, "", ""
    if form.is_valid():
        try:
            attachment = attachment_add(
                user=request.user, initiative=initiative, upload=form.cleaned_data["file"]
            )
        except ValidationError as error:
            add_service_error(form, error)
            status = refusal_status(error)
            refusal = _refusal_note(error) if status == 403 else ""
        else:
            note = _("“%(name)s” is attached.") % {"name": attachment.original_name}
            if not request.htmx:
                messages.success(request, note)
                return redirect(_initiative_url(initiative.pk, "attachments"))
            status, form = 200, None
    context = attachments_panel_context(
        user=request.user, initiative=initiative, form=form, note=note, refusal=refusal
    )
    template = (
        "initiatives/support/_attachments.html"
        if request.htmx
        else "initiatives/support/attachment_new.html"
    )
    return render(request, template, context, status=status)


@require_POST
def attachment_remove(request, pk: int):
    attachment = _attachment_or_404(request, pk)
    initiative = attachment.initiative
    status, note, refusal = 200, "", ""
    try:
        attachment_delete(user=request.user, attachment=attachment)
    except ValidationError as error:
        status, refusal = refusal_status(error), _refusal_note(error)
        if status == 403 and not request.htmx:
            raise PermissionDenied(refusal) from error
    else:
        note = _("“%(name)s” is deleted.") % {"name": attachment.original_name}
    if not request.htmx:
        (messages.success if status < 300 else messages.error)(request, note or refusal)
        return redirect(_initiative_url(initiative.pk, "attachments"))
    context = attachments_panel_context(
        user=request.user, initiative=initiative, note=note, refusal=refusal
    )
    return render(request, "initiatives/support/_attachments.html", context, status=status)


@require_http_methods(["GET", "HEAD"])
def attachment_download(request, pk: int):
    """The file, as a download (see ``attachments.attachment_response`` for its headers)."""
    attachment = _attachment_or_404(request, pk)
    try:
        response = attachment_response(attachment)
    except FileNotFoundError as exc:
        raise Http404(_("The file is missing from the store.")) from exc
    if request.method == "GET":
        audit_download(
            request=request,
            target=f"attachment {attachment.pk} of initiative {attachment.initiative_id}",
            detail={"name": attachment.original_name, "sha256": attachment.sha256},
        )
    return response
