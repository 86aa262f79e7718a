"""A meeting's agenda, attendance, minutes and decisions as a Word document (.docx, A4).

Word documents open on every desktop of the hospital (Word, LibreOffice, the mail client's
preview), can be attached to a mail and edited by whoever receives them; python-docx writes
them without a template or an office suite. The text is the reader's language; nothing is
taken from the page's HTML, so nothing a user typed becomes markup.
"""

from __future__ import annotations

import io
import re

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.text import slugify
from django.utils.translation import gettext as _
from docx import Document
from docx.shared import Mm, Pt

from .agenda import reason_label
from .enums import State
from .selectors_forums import MeetingRecord, step_label

# Characters XML 1.0 cannot hold (a pasted control character would make Word refuse the file).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: object) -> str:
    return _NOT_XML.sub("", str(value or ""))


def _name(user) -> str:
    if user is None:
        return _("the system")
    return user.get_full_name() or user.get_username()


def meeting_title(record: MeetingRecord) -> str:
    when = date_format(timezone.localtime(record.meeting.starts_at), "DATETIME_FORMAT")
    return _("%(forum)s: meeting %(when)s") % {"forum": record.meeting.forum, "when": when}


def document_filename(record: MeetingRecord) -> str:
    meeting = record.meeting
    day = timezone.localtime(meeting.starts_at).date().isoformat()
    return f"{slugify(meeting.forum.name) or 'forum'}-{day}.docx"


def _paragraphs(document, text: str) -> None:
    """Blank lines separate paragraphs; single line breaks stay line breaks."""
    blocks = [b for b in re.split(r"\n\s*\n", _text(text).replace("\r\n", "\n")) if b.strip()]
    for block in blocks:
        paragraph = document.add_paragraph()
        lines = block.strip("\n").split("\n")
        for i, line in enumerate(lines):
            run = paragraph.add_run(line)
            if i < len(lines) - 1:
                run.add_break()


def meeting_docx(record: MeetingRecord) -> bytes:
    """The document, as the bytes of a .docx file."""
    meeting = record.meeting
    document = Document()
    section = document.sections[0]
    section.page_width, section.page_height = Mm(210), Mm(297)
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Mm(20))
    document.styles["Normal"].font.size = Pt(11)
    title = _text(meeting_title(record))
    document.core_properties.title = title
    document.core_properties.subject = _text(meeting.forum)

    document.add_heading(title, level=0)
    facts = document.add_table(rows=0, cols=2)
    facts.style = "Table Grid"
    for label, value in (
        (_("Forum"), meeting.forum),
        (
            _("Starts"),
            date_format(timezone.localtime(meeting.starts_at), "DATETIME_FORMAT"),
        ),
        (_("Place"), meeting.location or "—"),
    ):
        cells = facts.add_row().cells
        cells[0].text, cells[1].text = _text(label), _text(value)

    document.add_heading(_("Attendance"), level=1)
    present = ", ".join(_name(u) for u in record.present) or "—"
    document.add_paragraph(_text(_("Present: %(names)s") % {"names": present}))
    if record.absent:
        absent = ", ".join(_name(m.user) for m in record.absent)
        document.add_paragraph(_text(_("Not present: %(names)s") % {"names": absent}))

    document.add_heading(_("Agenda"), level=1)
    if not record.items:
        document.add_paragraph(_("No items."))
    for item in record.items:
        heading = document.add_paragraph(style="List Number")
        heading.add_run(_text(item.title)).bold = True
        extra = [reason_label(item.reason)]
        if item.initiative is not None:
            extra.append(str(State(item.initiative.state).label))
        extra = [e for e in extra if e]
        if extra:
            heading.add_run(_text(f" ({'; '.join(extra)})"))
        if item.notes:
            _paragraphs(document, item.notes)

    document.add_heading(_("Minutes"), level=1)
    if meeting.minutes.strip():
        _paragraphs(document, meeting.minutes)
    else:
        document.add_paragraph(_("No minutes yet."))

    document.add_heading(_("Decisions"), level=1)
    if not record.decisions:
        document.add_paragraph(_("No decisions recorded in this meeting."))
    else:
        table = document.add_table(rows=1, cols=4)
        table.style = "Table Grid"
        for cell, label in zip(
            table.rows[0].cells,
            (_("Initiative"), _("Decision"), _("Now"), _("Why")),
            strict=True,
        ):
            cell.text = _text(label)
            for run in cell.paragraphs[0].runs:
                run.bold = True
        for activity in record.decisions:
            cells = table.add_row().cells
            cells[0].text = _text(activity.initiative.title)
            cells[1].text = _text(
                _("%(step)s, by %(who)s")
                % {"step": step_label(activity), "who": _name(activity.actor)}
            )
            cells[2].text = _text(
                _("%(state)s in %(forum)s")
                % {"state": State(activity.to_state).label, "forum": activity.to_forum}
            )
            cells[3].text = _text(activity.comment)

    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
