"""Forum and meeting pages: the forums, a forum's members, initiatives and meetings, a
meeting's attendance, agenda (HTMX edits) and minutes, its printable record and its export.

Thin: the rules decide (``forums/rules.py``), the services write (``forums/services.py``,
``initiatives/agenda.py``), the selectors read (``initiatives/selectors_forums.py``).
Meetings are fetched only through :func:`visible_meetings`, so a meeting one may not read is
a 404; one may read but not record answers 403 to a write.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from forums.models import Meeting
from forums.services import meeting_create, meeting_delete, meeting_update
from units.audit import audit_download

from . import agenda
from .forms_forums import AgendaItemForm, AgendaMoveForm, MeetingForm
from .meeting_document import document_filename, meeting_docx
from .models import AgendaItem
from .selectors_forums import (
    forum_list,
    forum_page,
    meeting_members,
    meeting_record,
    visible_forums,
    visible_meetings,
)


def _codes(error: ValidationError) -> set[str]:
    if hasattr(error, "error_dict"):
        return {e.code for errors in error.error_dict.values() for e in errors}
    return {e.code for e in error.error_list}


def _message(error: ValidationError) -> str:
    return " ".join(str(m) for m in error.messages)


# --------------------------------------------------------------------------------------------
# Forums
# --------------------------------------------------------------------------------------------


@require_safe
def forums(request):
    mine, others = forum_list(request.user)
    return render(request, "initiatives/forums/list.html", {"mine": mine, "others": others})


@require_safe
def forum(request, pk: int):
    found = get_object_or_404(visible_forums(), pk=pk)
    return render(request, "initiatives/forums/forum.html", {"page": forum_page(found)})


@require_http_methods(["GET", "POST"])
def meeting_new(request, pk: int):
    found = get_object_or_404(visible_forums(), pk=pk)
    if not request.user.has_perm("forums.plan_meeting", found):
        raise PermissionDenied(_("Only the forum's chair or secretary plans its meetings."))
    members = meeting_members(Meeting(forum=found))
    form = MeetingForm(request.POST or None, members=members)
    del form.fields["version"]
    if request.method == "POST" and form.is_valid():
        try:
            meeting = meeting_create(
                user=request.user,
                forum=found,
                starts_at=form.cleaned_data["starts_at"],
                location=form.cleaned_data["location"],
                present=form.cleaned_data["present"],
                minutes=form.cleaned_data["minutes"],
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("The meeting is planned."))
            return redirect("initiatives:meeting", pk=meeting.pk)
    return render(
        request,
        "initiatives/forums/meeting_new.html",
        {"forum": found, "form": form},
        status=400 if form.errors else 200,
    )


def _add_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


# --------------------------------------------------------------------------------------------
# A meeting
# --------------------------------------------------------------------------------------------


def _meeting(request, pk: int) -> Meeting:
    return get_object_or_404(visible_meetings(request.user), pk=pk)


def _meeting_form(meeting: Meeting, record, data=None) -> MeetingForm:
    initial = {
        "starts_at": meeting.starts_at,
        "location": meeting.location,
        "present": [u.pk for u in record.present],
        "minutes": meeting.minutes,
        "version": meeting.version,
    }
    return MeetingForm(data, initial=initial, members=record.members, recorded=record.present)


def _agenda_context(
    request, meeting: Meeting, record, *, can_record=None, drafts=None, **extra
) -> dict:
    """The agenda fragment's context. ``drafts``: item id → the title and notes a person
    typed that could not be saved (kept in the item's edit form, which opens)."""
    if can_record is None:
        can_record = request.user.has_perm("forums.record_meeting", meeting)
    on_agenda = {agenda.item_key(i.initiative_id, i.measure_id) for i in record.items}
    drafts = drafts or {}
    for item in record.items:
        draft = drafts.get(item.pk)
        item.draft = draft is not None
        item.form_title = draft["title"] if draft else item.title
        item.form_notes = draft["notes"] if draft else item.notes
        item.digest = agenda.item_digest(item)
    return {
        "meeting": meeting,
        "items": record.items,
        "proposals": agenda.agenda_propose(meeting, on_agenda=on_agenda) if can_record else [],
        "can_record": can_record,
        **extra,
    }


@require_http_methods(["GET", "POST"])
def meeting(request, pk: int):
    """The meeting page; a POST saves its record (time, place, who was there, minutes)."""
    found = _meeting(request, pk)
    record = meeting_record(found)
    can_record = request.user.has_perm("forums.record_meeting", found)
    status = 200
    theirs = None
    if request.method == "POST":
        if not can_record:
            raise PermissionDenied(_("Only the forum's chair or secretary records its meetings."))
        form = _meeting_form(found, record, request.POST)
        if form.is_valid():
            try:
                meeting_update(
                    user=request.user,
                    meeting=found,
                    version=form.cleaned_data["version"]
                    if form.cleaned_data["version"] is not None
                    else -1,
                    starts_at=form.cleaned_data["starts_at"],
                    location=form.cleaned_data["location"],
                    present=form.cleaned_data["present"],
                    minutes=form.cleaned_data["minutes"],
                )
            except ValidationError as error:
                if "stale" in _codes(error):
                    # Keep what this person typed; show what was saved meanwhile, and carry
                    # the version just read, so a second save (after merging) goes through.
                    theirs = Meeting.objects.get(pk=found.pk)
                    data = request.POST.copy()
                    data["version"] = str(theirs.version)
                    form = _meeting_form(found, record, data)
                    form.is_valid()
                    form.add_error(None, error)
                    status = 409
                else:
                    _add_errors(form, error)
                    status = 400
            else:
                messages.success(request, _("The meeting is saved."))
                return redirect("initiatives:meeting", pk=found.pk)
        else:
            status = 400
    else:
        form = _meeting_form(found, record) if can_record else None
    context = {
        "record": record,
        "form": form,
        "theirs": theirs,
        "can_remove": can_record and not record.decisions,
        **_agenda_context(request, found, record, can_record=can_record),
    }
    return render(request, "initiatives/forums/meeting.html", context, status=status)


@require_POST
def meeting_remove(request, pk: int):
    found = _meeting(request, pk)
    if not request.user.has_perm("forums.record_meeting", found):
        raise PermissionDenied(_("Only the forum's chair or secretary removes its meetings."))
    forum_pk = found.forum_id
    try:
        meeting_delete(user=request.user, meeting=found)
    except ValidationError as error:
        messages.error(request, _message(error))
        return redirect("initiatives:meeting", pk=found.pk)
    messages.success(request, _("The meeting is removed."))
    return redirect("initiatives:forum", pk=forum_pk)


@require_safe
def meeting_print(request, pk: int):
    """The meeting's record laid out for A4 paper: agenda, attendance, minutes, decisions."""
    found = _meeting(request, pk)
    return render(
        request, "initiatives/forums/meeting_print.html", {"record": meeting_record(found)}
    )


@require_safe
def meeting_export(request, pk: int):
    """The same record as a Word document to mail (audited like every download)."""
    found = _meeting(request, pk)
    record = meeting_record(found)
    data = meeting_docx(record)
    audit_download(request=request, target=f"meeting {found.pk} document")
    response = HttpResponse(
        data,
        content_type="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )
    response["Content-Disposition"] = f'attachment; filename="{document_filename(record)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --------------------------------------------------------------------------------------------
# The agenda (HTMX: each write answers the agenda fragment; without JS, the page again)
# --------------------------------------------------------------------------------------------


def _recorder(request, meeting: Meeting) -> None:
    if not request.user.has_perm("forums.record_meeting", meeting):
        raise PermissionDenied(_("Only the forum's chair or secretary keeps its agenda."))


def _agenda_answer(
    request,
    meeting: Meeting,
    *,
    error: str = "",
    status: str = "",
    focus_item: int | None = None,
    focus: str = "",
    drafts=None,
):
    """The agenda fragment (HTMX), or back to the page with a message (no JS).

    ``status`` is announced to screen readers; ``focus_item``/``focus`` say which control
    takes the focus after the swap (the moved item's button, the add form …).
    """
    if not request.htmx:
        if error:
            messages.error(request, error)
        elif status:
            messages.success(request, status)
        return redirect(reverse("initiatives:meeting", args=[meeting.pk]) + "#agenda")
    record = meeting_record(meeting)
    context = _agenda_context(
        request,
        meeting,
        record,
        error=error,
        status=status,
        focus_item=focus_item,
        focus=focus,
        drafts=drafts,
    )
    return render(request, "initiatives/forums/_agenda.html", context)


@require_POST
def agenda_add(request, pk: int):
    """Add an item written by hand (a title, notes)."""
    found = _meeting(request, pk)
    _recorder(request, found)
    form = AgendaItemForm(request.POST)
    if not form.is_valid():
        return _agenda_answer(request, found, error=_("Give the item a title."))
    try:
        agenda.agenda_item_add(
            user=request.user,
            meeting=found,
            title=form.cleaned_data["title"],
            notes=form.cleaned_data["notes"],
        )
    except ValidationError as error:
        return _agenda_answer(request, found, error=_message(error))
    return _agenda_answer(request, found, status=_("The item is added."), focus="add")


@require_POST
def agenda_add_proposed(request, pk: int):
    """Add one proposed item (``key``) or all of them (no key)."""
    found = _meeting(request, pk)
    _recorder(request, found)
    keys = request.POST.getlist("key") or None
    try:
        added = agenda.agenda_proposals_add(user=request.user, meeting=found, keys=keys)
    except ValidationError as error:
        return _agenda_answer(request, found, error=_message(error))
    status = ngettext("%(count)s item is added.", "%(count)s items are added.", len(added)) % {
        "count": len(added)
    }
    return _agenda_answer(request, found, status=status, focus="proposals")


def _item(request, pk: int) -> AgendaItem:
    item = get_object_or_404(
        AgendaItem.objects.select_related("meeting", "meeting__forum").filter(
            meeting__in=visible_meetings(request.user)
        ),
        pk=pk,
    )
    _recorder(request, item.meeting)
    return item


@require_POST
def agenda_item_edit(request, pk: int):
    item = _item(request, pk)
    form = AgendaItemForm(request.POST)
    if not form.is_valid():
        return _agenda_answer(
            request,
            item.meeting,
            error=_("Give the item a title."),
            drafts={item.pk: _draft(request.POST)},
        )
    try:
        agenda.agenda_item_update(
            user=request.user,
            item=item,
            title=form.cleaned_data["title"],
            notes=form.cleaned_data["notes"],
            digest=form.cleaned_data["digest"] or None,
        )
    except ValidationError as error:
        return _agenda_answer(
            request, item.meeting, error=_message(error), drafts={item.pk: _draft(request.POST)}
        )
    return _agenda_answer(
        request, item.meeting, status=_("The item is saved."), focus_item=item.pk, focus="edit"
    )


def _draft(data: QueryDict) -> dict:
    return {"title": data.get("title", ""), "notes": data.get("notes", "")}


@require_POST
def agenda_item_move(request, pk: int):
    item = _item(request, pk)
    form = AgendaMoveForm(request.POST)
    if not form.is_valid() or not (form.cleaned_data["direction"] or form.cleaned_data["position"]):
        return _agenda_answer(request, item.meeting, error=_("Move an item up or down."))
    try:
        agenda.agenda_item_move(
            user=request.user,
            item=item,
            direction=form.cleaned_data["direction"] or None,
            position=form.cleaned_data["position"],
        )
    except ValidationError as error:
        return _agenda_answer(request, item.meeting, error=_message(error))
    status = _("“%(title)s” is now item %(position)s.") % {
        "title": item.title,
        "position": item.position,
    }
    return _agenda_answer(
        request,
        item.meeting,
        status=status,
        focus_item=item.pk,
        focus=form.cleaned_data["direction"] or "up",
    )


@require_POST
def agenda_item_remove(request, pk: int):
    item = _item(request, pk)
    meeting = item.meeting
    try:
        agenda.agenda_item_delete(user=request.user, item=item)
    except ValidationError as error:
        return _agenda_answer(request, meeting, error=_message(error))
    return _agenda_answer(request, meeting, status=_("The item is removed."), focus="add")
