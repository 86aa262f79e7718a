"""Files attached to initiatives: checked on the way in, kept outside the web root, handed
out only as downloads.

Who may attach: as for support requests (anyone who sits in the forum the initiative sits
in, the person who logged it, admins; not on a closed initiative). Who may delete: the
uploader, the deciders of that forum, admins. Who may download: whoever may see the
initiative.

On the way in (``attachment_add``), as the data-file upload is guarded (measures.services):

- size: at most ``LHS_ATTACHMENT_MAX_BYTES`` (checked before reading and again while the file
  is streamed to a temporary file, hashing it on the way); an empty file is refused;
- type: the contents (magic bytes) and the name's extension must agree on one type of
  :data:`TYPES`: PDF, PNG, JPEG, GIF, Word/Excel/PowerPoint (Office Open XML: a zip with
  ``[Content_Types].xml`` naming the main part; none with macros), OpenDocument (a zip whose
  ``mimetype`` names it; no macros), text and CSV (UTF-8, no NUL, not markup). Everything
  else is refused with the file's name and the reason: web pages, SVG, programs and scripts,
  old Office files, other archives, zip bombs (too many entries, too much unpacked, or packed
  too tightly);
- name: the uploader's name is kept only for the download's Content-Disposition, cleaned
  (:func:`clean_name`: no folders, no control or invisible characters, at most 150
  characters); the stored name is random (``attachments/<initiative id>/<hex>`` under
  ``MEDIA_ROOT``, which the web server does not serve);
- at most ``LHS_ATTACHMENTS_PER_INITIATIVE`` files per initiative, and the same contents
  once (a form sent twice attaches one file).

Nothing half-written: the file is written to storage inside the transaction that inserts its
row, after every check; if the insert or the commit fails, the file is deleted before the
error goes on. Two cases leave a file without a row: a caller's outer transaction rolled back
after the attachment was added (the log form adds an initiative and its first file in one
transaction), or the process died between the write and the commit. The beat task
``attachment_files_sweep`` deletes, once a day, files under ``attachments/`` that no row names
and that are older than an hour. A deleted attachment's row goes in its transaction, its file
once that has committed.

Served (:func:`attachment_response`) with ``Content-Disposition: attachment`` (an ASCII
``filename`` and the UTF-8 ``filename*`` of RFC 6266 / 5987), ``X-Content-Type-Options:
nosniff``, ``Content-Security-Policy: default-src 'none'; sandbox``, and the content type of
the allow-list, never the uploader's.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import re
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath
from typing import IO
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.db.models import QuerySet
from django.http import FileResponse
from django.template.defaultfilters import filesizeformat
from django.utils import formats, timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import workflow
from .models import Attachment, Initiative
from .rules import can_add_attachment, can_delete_attachment, visible_initiatives

logger = logging.getLogger(__name__)

#: The longest original name kept (the extension is kept whole).
MAX_NAME = 150
#: A zip (Office, OpenDocument) may hold at most this many entries …
MAX_ZIP_ENTRIES = 5_000
#: … unpack to at most this many bytes in all …
MAX_ZIP_UNPACKED = 200 * 1024 * 1024
#: … and no entry over a megabyte may be packed more tightly than this (zeros pack ~1000:1,
#: an Office document's XML rarely beyond 100:1).
MAX_ZIP_RATIO = 200
#: How much of a small zip entry we read to tell the type ([Content_Types].xml, mimetype).
_MANIFEST_BYTES = 1024 * 1024
_HEAD = 8192
_CHUNK = 64 * 1024

_OOXML = "application/vnd.openxmlformats-officedocument."
_ODF = "application/vnd.oasis.opendocument."


@dataclass(frozen=True)
class FileType:
    key: str
    label: Promise
    content_type: str
    extensions: tuple[str, ...]


#: Every type accepted: what we store as the content type and serve, and the extensions that
#: may name it.
TYPES: tuple[FileType, ...] = (
    FileType("pdf", gettext_lazy("PDF document"), "application/pdf", (".pdf",)),
    FileType("png", gettext_lazy("PNG image"), "image/png", (".png",)),
    FileType("jpeg", gettext_lazy("JPEG image"), "image/jpeg", (".jpg", ".jpeg")),
    FileType("gif", gettext_lazy("GIF image"), "image/gif", (".gif",)),
    FileType(
        "docx",
        gettext_lazy("Word document"),
        _OOXML + "wordprocessingml.document",
        (".docx",),
    ),
    FileType("xlsx", gettext_lazy("Excel workbook"), _OOXML + "spreadsheetml.sheet", (".xlsx",)),
    FileType(
        "pptx",
        gettext_lazy("PowerPoint presentation"),
        _OOXML + "presentationml.presentation",
        (".pptx",),
    ),
    FileType("odt", gettext_lazy("OpenDocument text"), _ODF + "text", (".odt",)),
    FileType("ods", gettext_lazy("OpenDocument spreadsheet"), _ODF + "spreadsheet", (".ods",)),
    FileType("odp", gettext_lazy("OpenDocument presentation"), _ODF + "presentation", (".odp",)),
    FileType("txt", gettext_lazy("Text"), "text/plain", (".txt",)),
    FileType("csv", gettext_lazy("CSV table"), "text/csv", (".csv",)),
)
BY_KEY: dict[str, FileType] = {t.key: t for t in TYPES}
BY_CONTENT_TYPE: dict[str, FileType] = {t.content_type: t for t in TYPES}
#: For the file input's ``accept``.
ACCEPT = ",".join(ext for t in TYPES for ext in t.extensions)

#: The main part's content type in [Content_Types].xml → our type (macro-free formats only).
_OOXML_MAIN = {
    b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml": "docx",
    b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml": "xlsx",
    b"application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml": "pptx",
}
_OOXML_MACROS = (b"macroEnabled", b"vbaProject")


def accepted_types_text() -> str:
    return _(
        "PDF, PNG, JPEG, GIF, Word, Excel and PowerPoint (.docx, .xlsx, .pptx), OpenDocument "
        "(.odt, .ods, .odp), text and CSV"
    )


def _refuse(message: str, code: str, field: str | None = "file") -> ValidationError:
    error = ValidationError(message, code=code)
    return ValidationError({field: error}) if field else error


# --- names ----------------------------------------------------------------------------------

_UNSAFE = re.compile(r'[<>:"|?*]')


def clean_name(name: str) -> str:
    """The uploader's file name, made safe to keep and to give back in a download.

    The last part of any path (``/`` or ``\\``), in NFC; control, format (such as the
    right-to-left override), private and unassigned characters dropped, other spaces made
    plain ones, ``<>:"|?*`` replaced, no leading or trailing dots or spaces, at most
    :data:`MAX_NAME` characters with the extension kept. Empty: ``attachment``.
    """
    name = unicodedata.normalize("NFC", str(name or ""))
    name = re.split(r"[\\/]", name)[-1]
    kept = []
    for char in name:
        category = unicodedata.category(char)
        if category[0] == "C" or category in ("Zl", "Zp"):
            continue
        kept.append(" " if category == "Zs" else char)
    name = _UNSAFE.sub("_", "".join(kept))
    name = re.sub(r" {2,}", " ", name).strip(" .")
    if len(name) > MAX_NAME:
        path = PurePosixPath(name)
        suffix = path.suffix if len(path.suffix) <= 16 else ""
        name = name[: MAX_NAME - len(suffix)].rstrip(" .") + suffix
    return name or "attachment"


def _extension(name: str) -> str:
    return PurePosixPath(name).suffix.lower()


# --- what a file is -------------------------------------------------------------------------


class _Refused(Exception):
    """A type we know and refuse, with what to call it in the message."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


_PROGRAMS = (
    b"MZ",  # Windows programs and libraries
    b"\x7fELF",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # Mach-O (and Java classes)
)
_ARCHIVES = (b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")
_PAGE_STARTS = ("<!doctype", "<html", "<head", "<body", "<script", "<iframe")


def _markup(text: str) -> str | None:
    """What markup a text starts with (a web page, SVG, XML), or None."""
    start = text.lstrip("\ufeff \t\r\n").lower()
    head = start[:1024]
    if "<svg" in head:
        return _("an SVG image (which can hold scripts)")
    if start.startswith(_PAGE_STARTS) or "<html" in head or "<script" in head:
        return _("a web page (HTML)")
    if start.startswith("<?xml"):
        return _("an XML document")
    return None


def _sniff_zip(fh: IO[bytes], name: str) -> str:
    """The type of a zip: docx / xlsx / pptx / odt / ods / odp; refuses every other zip."""
    try:
        archive = zipfile.ZipFile(fh)
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise _Refused(_("a damaged zip archive")) from exc
    if len(entries) > MAX_ZIP_ENTRIES:
        raise _Refused(
            _("a zip archive of %(count)s entries (at most %(max)s)")
            % {"count": len(entries), "max": MAX_ZIP_ENTRIES}
        )
    unpacked = sum(entry.file_size for entry in entries)
    if unpacked > MAX_ZIP_UNPACKED:
        raise _Refused(
            _("a zip archive that unpacks to %(size)s (at most %(max)s)")
            % {"size": filesizeformat(unpacked), "max": filesizeformat(MAX_ZIP_UNPACKED)}
        )
    for entry in entries:
        if entry.file_size > 1024 * 1024 and entry.file_size > MAX_ZIP_RATIO * max(
            entry.compress_size, 1
        ):
            raise _Refused(
                _("a zip bomb (an entry packed %(ratio)s to 1)")
                % {"ratio": entry.file_size // max(entry.compress_size, 1)}
            )
    names = {entry.filename for entry in entries}

    def read(entry_name: str) -> bytes:
        info = archive.getinfo(entry_name)
        if info.file_size > _MANIFEST_BYTES:
            raise _Refused(_("a damaged document (its manifest is too large)"))
        try:
            with archive.open(info) as part:
                return part.read(_MANIFEST_BYTES + 1)[:_MANIFEST_BYTES]
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, ValueError) as exc:
            raise _Refused(_("a damaged zip archive")) from exc

    if "[Content_Types].xml" in names:
        manifest = read("[Content_Types].xml")
        if any(marker.lower() in manifest.lower() for marker in _OOXML_MACROS) or any(
            n.lower().endswith("vbaproject.bin") for n in names
        ):
            raise _Refused(_("an Office document with macros"))
        for main, key in _OOXML_MAIN.items():
            if main in manifest:
                return key
        raise _Refused(_("an Office file of a kind we do not accept (a template or add-in)"))
    if "mimetype" in names:
        mimetype = read("mimetype").strip().decode("ascii", "replace")
        if any(n.startswith(("Basic/", "Scripts/")) for n in names):
            raise _Refused(_("an OpenDocument file with macros"))
        found = BY_CONTENT_TYPE.get(mimetype)
        if found is not None and found.content_type.startswith(_ODF):
            return found.key
        raise _Refused(_("an OpenDocument file of a kind we do not accept"))
    raise _Refused(_("a zip archive"))


def _sniff_text(fh: IO[bytes]) -> str:
    """``text`` for UTF-8 text without NUL that is not markup; refuses anything else."""
    fh.seek(0)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    head = ""
    while block := fh.read(_CHUNK):
        if b"\x00" in block:
            raise _Refused(_("a binary file"))
        try:
            text = decoder.decode(block)
        except UnicodeDecodeError as exc:
            raise _Refused(_("not UTF-8 text (save it as UTF-8, or as PDF)")) from exc
        if len(head) < 2048:
            head += text[: 2048 - len(head)]
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise _Refused(_("not UTF-8 text (save it as UTF-8, or as PDF)")) from exc
    markup = _markup(head)
    if markup:
        raise _Refused(markup)
    return "text"


def sniff(fh: IO[bytes], name: str = "") -> str:
    """What the contents are: a key of :data:`TYPES` (``text`` for text and CSV).

    Raises ``_Refused`` naming what a refused file is.
    """
    fh.seek(0)
    head = fh.read(_HEAD)
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"PK\x03\x04"):
        return _sniff_zip(fh, name)
    if head.startswith((b"PK\x05\x06", b"PK\x07\x08")):
        raise _Refused(_("a zip archive"))
    if head.startswith(_PROGRAMS):
        raise _Refused(_("a program"))
    if head.startswith(b"#!"):
        raise _Refused(_("a script"))
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        raise _Refused(
            _(
                "an old-format Office file, which can carry macros (save it as .docx, .xlsx "
                "or .pptx)"
            )
        )
    if head.startswith(b"{\\rtf"):
        raise _Refused(_("an RTF document (save it as .docx or PDF)"))
    if head.startswith(_ARCHIVES):
        raise _Refused(_("a compressed archive"))
    return _sniff_text(fh)


def _check_type(fh: IO[bytes], name: str) -> FileType:
    """The accepted type the contents and the extension agree on; refuses otherwise."""
    try:
        key = sniff(fh, name)
    except _Refused as refused:
        raise _refuse(
            _("“%(name)s” is %(what)s. Accepted are %(types)s.")
            % {"name": name, "what": refused.what, "types": accepted_types_text()},
            "bad_type",
        ) from None
    ext = _extension(name)
    candidates = [BY_KEY["txt"], BY_KEY["csv"]] if key == "text" else [BY_KEY[key]]
    for candidate in candidates:
        if ext in candidate.extensions:
            return candidate
    what = _("text") if key == "text" else str(BY_KEY[key].label)
    if not ext:
        message = _("“%(name)s” has no extension; its contents are: %(what)s (%(exts)s).")
    else:
        message = _(
            "“%(name)s” is named %(ext)s, but its contents are: %(what)s (%(exts)s). Give it "
            "the right extension."
        )
    exts = ", ".join(e for c in candidates for e in c.extensions)
    raise _refuse(message % {"name": name, "ext": ext, "what": what, "exts": exts}, "type_mismatch")


# --- reads ----------------------------------------------------------------------------------


def visible_attachments(user) -> QuerySet[Attachment]:
    """Attachments of the initiatives ``user`` may see, the oldest first."""
    return (
        Attachment.objects.filter(initiative__in=visible_initiatives(user))
        .select_related("initiative", "initiative__forum", "uploaded_by")
        .order_by("uploaded_at", "pk")
    )


def initiative_attachments(initiative: Initiative) -> QuerySet[Attachment]:
    """An initiative's attachments, the oldest first (its panel)."""
    return initiative.attachments.select_related("uploaded_by").order_by("uploaded_at", "pk")


def type_label(attachment: Attachment) -> str:
    found = BY_CONTENT_TYPE.get(attachment.content_type)
    return str(found.label) if found else attachment.content_type


# --- writes ---------------------------------------------------------------------------------


def _spool(upload: File, into: IO[bytes], *, name: str, limit: int) -> tuple[int, str]:
    """Copy the upload into ``into``, hashing it; refuses it once it passes ``limit``."""
    digest = hashlib.sha256()
    size = 0
    for chunk in upload.chunks(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _too_large(name, size, limit, at_least=True)
        digest.update(chunk)
        into.write(chunk)
    if size == 0:
        raise _refuse(_("“%(name)s” is empty.") % {"name": name}, "empty")
    into.flush()
    into.seek(0)
    return size, digest.hexdigest()


def _too_large(name: str, size: int, limit: int, *, at_least: bool = False) -> ValidationError:
    if at_least:
        message = _("“%(name)s” is larger than %(max)s, the largest accepted.")
    else:
        message = _("“%(name)s” is %(size)s; the largest accepted is %(max)s.")
    return _refuse(
        message % {"name": name, "size": filesizeformat(size), "max": filesizeformat(limit)},
        "too_large",
    )


def attachment_add(*, user: AbstractBaseUser, initiative: Initiative, upload: File) -> Attachment:
    """Attach ``upload`` to ``initiative`` after every check of the module's docstring.

    Refusals carry the field ``file`` and a code: ``not_permitted``, ``too_large``,
    ``empty``, ``bad_type``, ``type_mismatch``, ``too_many``, ``conflict`` (the same contents
    are attached already).
    """
    if not can_add_attachment(user, initiative):
        if initiative.state in workflow.CLOSED:
            message = _("The initiative is closed: no more files on it.")
        else:
            message = _(
                "Only the members of %(forum)s and the person who logged the initiative may "
                "attach files to it."
            ) % {"forum": initiative.forum}
        raise _refuse(message, "not_permitted", None)
    name = clean_name(getattr(upload, "name", "") or "")
    limit = settings.LHS_ATTACHMENT_MAX_BYTES
    declared = getattr(upload, "size", None)
    if declared is not None and declared > limit:
        raise _too_large(name, declared, limit)
    with tempfile.TemporaryFile() as spool:
        size, digest = _spool(upload, spool, name=name, limit=limit)
        file_type = _check_type(spool, name)
        spool.seek(0)
        return _store(
            user=user,
            initiative=initiative,
            name=name,
            file_type=file_type,
            size=size,
            digest=digest,
            contents=spool,
        )


def _store(
    *,
    user,
    initiative: Initiative,
    name: str,
    file_type: FileType,
    size: int,
    digest: str,
    contents: IO[bytes],
) -> Attachment:
    """Insert the row and write the file in one transaction; either both or neither."""
    storage = Attachment._meta.get_field("file").storage
    stored: str | None = None
    try:
        with transaction.atomic():
            # Uploads to one initiative one at a time: the count and the duplicate check hold.
            Initiative.objects.select_for_update().filter(pk=initiative.pk).first()
            existing = Attachment.objects.filter(initiative=initiative)
            limit = settings.LHS_ATTACHMENTS_PER_INITIATIVE
            if existing.count() >= limit:
                raise _refuse(
                    _("An initiative holds at most %(max)s files; delete one first.")
                    % {"max": limit},
                    "too_many",
                )
            same = existing.filter(sha256=digest).first()
            if same is not None:
                raise _refuse(
                    _("“%(name)s” is attached already (as “%(existing)s”, %(when)s).")
                    % {
                        "name": name,
                        "existing": same.original_name,
                        "when": formats.date_format(
                            timezone.localtime(same.uploaded_at), "SHORT_DATETIME_FORMAT"
                        ),
                    },
                    "conflict",
                )
            attachment = Attachment(
                initiative=initiative,
                original_name=name,
                content_type=file_type.content_type,
                size=size,
                sha256=digest,
                uploaded_by=user,
            )
            attachment.file.save(name, File(contents, name=name), save=False)
            stored = attachment.file.name
            attachment.save()
    except BaseException:
        if stored:
            try:
                storage.delete(stored)
            except OSError:
                logger.exception("Attachment file %s not deleted after a failed insert", stored)
        raise
    return attachment


def attachment_delete(*, user: AbstractBaseUser, attachment: Attachment) -> None:
    """Delete an attachment: the row now, the file once that has committed."""
    if not can_delete_attachment(user, attachment):
        raise _refuse(
            _(
                "Only the person who attached “%(name)s” or the chair or secretary of "
                "%(forum)s may delete it."
            )
            % {"name": attachment.original_name, "forum": attachment.initiative.forum},
            "not_permitted",
            None,
        )
    storage = attachment.file.storage
    name = attachment.file.name
    with transaction.atomic():
        deleted, _counts = Attachment.objects.filter(pk=attachment.pk).delete()
        if not deleted:
            raise _refuse(_("This file was deleted already."), "not_found", None)
        transaction.on_commit(lambda: _delete_file(storage, name))


def _delete_file(storage, name: str) -> None:
    try:
        storage.delete(name)
    except OSError:
        logger.exception("Attachment file %s not deleted; the sweep will", name)


def attachment_files_sweep(*, older_than: timedelta = timedelta(hours=1)) -> int:
    """Delete files under ``attachments/`` that no row names, older than ``older_than``.

    The age keeps it off files of uploads still in their transaction. Returns how many went.
    """
    storage = Attachment._meta.get_field("file").storage
    cutoff = timezone.now() - older_than
    try:
        folders, _files = storage.listdir("attachments")
    except FileNotFoundError:
        return 0
    removed = 0
    for folder in folders:
        _dirs, files = storage.listdir(f"attachments/{folder}")
        names = {f"attachments/{folder}/{file}" for file in files}
        if not names:
            continue
        known = set(Attachment.objects.filter(file__in=names).values_list("file", flat=True))
        for orphan in sorted(names - known):
            try:
                if storage.get_modified_time(orphan) >= cutoff:
                    continue
                storage.delete(orphan)
            except OSError:
                logger.exception("Orphaned attachment file %s not deleted", orphan)
                continue
            removed += 1
    if removed:
        logger.info("Deleted %s attachment files that no attachment named", removed)
    return removed


# --- serving --------------------------------------------------------------------------------


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII ``filename`` and, for other names, ``filename*`` in UTF-8
    (RFC 6266, RFC 5987): ``Årsrapport.pdf`` → ``filename="Arsrapport.pdf";
    filename*=UTF-8''%C3%85rsrapport.pdf``."""
    fallback = "".join(
        char if char.isascii() else "_"
        for char in unicodedata.normalize("NFKD", name)
        if not unicodedata.combining(char)
    )
    fallback = re.sub(r"[^A-Za-z0-9 ._()+,\-]", "_", fallback).strip() or "attachment"
    header = f'attachment; filename="{fallback}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(name, safe='')}"
    return header


def attachment_response(attachment: Attachment) -> FileResponse:
    """The download. Raises FileNotFoundError when the file is missing from storage."""
    file_type = BY_CONTENT_TYPE.get(attachment.content_type)
    content_type = file_type.content_type if file_type else "application/octet-stream"
    if content_type.startswith("text/"):
        content_type += "; charset=utf-8"
    handle = attachment.file.storage.open(attachment.file.name, "rb")
    response = FileResponse(handle, content_type=content_type)
    response["Content-Disposition"] = content_disposition(attachment.original_name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
