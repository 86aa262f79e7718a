"""Attachments: who may attach and delete; size, type and name checks; nothing half-written."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest
import rules
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, IntegrityError, transaction

from initiatives import attachments as attachments_module
from initiatives.attachments import (
    attachment_add,
    attachment_delete,
    attachment_files_sweep,
    clean_name,
    content_disposition,
)
from initiatives.models import Attachment
from initiatives.services import initiative_transition

from .conftest import PERSONAS, log
from .helpers import codes_of

# --- sample files ---------------------------------------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 32
GIF = b"GIF89a\x01\x00\x01\x00" + b"\x00" * 16
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 56 + b"This program cannot be run in DOS mode."
CSV = "mått;enhet;värde\nhonos;AFF-01;12\n".encode()

_OOXML_MAIN = {
    "docx": ("word/document.xml", "wordprocessingml.document.main+xml"),
    "xlsx": ("xl/workbook.xml", "spreadsheetml.sheet.main+xml"),
    "pptx": ("ppt/presentation.xml", "presentationml.presentation.main+xml"),
}


def ooxml(kind: str = "docx", *, macros: bool = False) -> bytes:
    part, main = _OOXML_MAIN[kind]
    content_type = f"application/vnd.openxmlformats-officedocument.{main}"
    if macros:
        content_type = "application/vnd.ms-word.document.macroEnabled.main+xml"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            f'content-types"><Override PartName="/{part}" ContentType="{content_type}"/></Types>',
        )
        archive.writestr(part, "<document>Hej</document>")
        if macros:
            archive.writestr("word/vbaProject.bin", b"\xd0\xcf\x11\xe0macro")
    return buffer.getvalue()


def opendocument(kind: str = "text") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), f"application/vnd.oasis.opendocument.{kind}")
        archive.writestr("content.xml", "<office:document-content/>")
    return buffer.getvalue()


def zip_bomb() -> bytes:
    """An Office-looking zip whose one part unpacks 64 MB of zeros from about 64 kB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", ooxml_manifest())
        with archive.open("word/document.xml", "w") as part:
            block = b"\x00" * (1024 * 1024)
            for _ in range(64):
                part.write(block)
    return buffer.getvalue()


def ooxml_manifest() -> str:
    return (
        '<Types><Override PartName="/word/document.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
    )


def upload(name: str, data: bytes, content_type: str = "application/octet-stream"):
    return SimpleUploadedFile(name, data, content_type=content_type)


def add(wf, initiative, name="plan.pdf", data=PDF, person="chair", **kw):
    return attachment_add(
        user=wf.people[person], initiative=initiative, upload=upload(name, data, **kw)
    )


def _refused(call) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call()
    return caught.value


def stored_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- who ------------------------------------------------------------------------------------


def test_who_may_attach(wf):
    idea = log(wf, "unit")
    may = set()
    for i, person in enumerate(PERSONAS):
        try:
            add(wf, idea, f"f{i}.txt", f"file {i}".encode(), person=person)
        except ValidationError as exc:
            assert codes_of(exc) == {"not_permitted"}, person
        else:
            may.add(person)
        assert rules.has_perm("initiatives.add_attachment", wf.people[person], idea) == (
            person in may
        ), person
    assert may == {"chair", "clinician", "unit_secretary", "admin"}
    assert Attachment.objects.count() == 4


def test_nothing_is_attached_to_a_closed_initiative(wf):
    idea = log(wf, "unit")
    initiative_transition(
        initiative=idea, user=wf.people["chair"], transition="withdraw", comment="Gone."
    )
    error = _refused(lambda: add(wf, idea))
    assert codes_of(error) == {"not_permitted"} and "closed" in error.messages[0]


def test_who_may_delete(wf, settings, django_capture_on_commit_callbacks):
    idea = log(wf, "unit")
    deleters = set()
    for i, person in enumerate(PERSONAS):
        attachment = add(wf, idea, f"n{i}.txt", f"note {i}".encode(), person="clinician")
        path = Path(attachment.file.path)
        assert rules.has_perm("initiatives.delete_attachment", wf.people[person], attachment) == (
            person in {"clinician", "chair", "unit_secretary", "admin"}
        ), person
        try:
            with django_capture_on_commit_callbacks(execute=True):
                attachment_delete(user=wf.people[person], attachment=attachment)
        except ValidationError as exc:
            assert codes_of(exc) == {"not_permitted"}, person
            assert path.exists() and Attachment.objects.filter(pk=attachment.pk).exists()
        else:
            deleters.add(person)
            assert not path.exists() and not Attachment.objects.filter(pk=attachment.pk).exists()
    # The uploader, the deciders of the forum it sits in, the admin.
    assert deleters == {"clinician", "chair", "unit_secretary", "admin"}


def test_deleting_twice_deletes_once(wf, django_capture_on_commit_callbacks):
    attachment = add(wf, log(wf, "unit"))
    with django_capture_on_commit_callbacks(execute=True):
        attachment_delete(user=wf.people["chair"], attachment=attachment)
    assert codes_of(
        _refused(lambda: attachment_delete(user=wf.people["chair"], attachment=attachment))
    ) == {"not_found"}


def test_a_rolled_back_delete_keeps_the_file(wf, django_capture_on_commit_callbacks):
    attachment = add(wf, log(wf, "unit"))
    path = Path(attachment.file.path)
    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        attachment_delete(user=wf.people["chair"], attachment=attachment)
        raise RuntimeError("the caller fails after the delete")
    assert path.exists() and Attachment.objects.filter(pk=attachment.pk).exists()


# --- what is kept ---------------------------------------------------------------------------


def test_what_is_stored(wf, settings):
    idea = log(wf, "unit")
    # The uploader's browser says text/html: the type stored is ours, from the contents.
    attachment = add(wf, idea, "Årsrapport 2025.pdf", PDF, content_type="text/html")
    assert attachment.original_name == "Årsrapport 2025.pdf"
    assert attachment.content_type == "application/pdf"
    assert attachment.size == len(PDF)
    assert attachment.sha256 == hashlib.sha256(PDF).hexdigest()
    assert attachment.uploaded_by == wf.people["chair"]
    # A random name of ours under attachments/<initiative>/, in MEDIA_ROOT, nothing else.
    name = attachment.file.name
    assert name.startswith(f"attachments/{idea.pk}/") and "rsrapport" not in name
    assert len(Path(name).name) == 32 and Path(name).suffix == ""
    assert stored_files(settings) == [Path(settings.MEDIA_ROOT) / name]
    assert (Path(settings.MEDIA_ROOT) / name).read_bytes() == PDF


@pytest.mark.parametrize(
    "name, data, content_type",
    [
        ("a.pdf", PDF, "application/pdf"),
        ("a.PNG", PNG, "image/png"),
        ("a.jpg", JPEG, "image/jpeg"),
        ("a.jpeg", JPEG, "image/jpeg"),
        ("a.gif", GIF, "image/gif"),
        (
            "a.docx",
            ooxml("docx"),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            "a.xlsx",
            ooxml("xlsx"),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        (
            "a.pptx",
            ooxml("pptx"),
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
        ("a.odt", opendocument("text"), "application/vnd.oasis.opendocument.text"),
        ("a.ods", opendocument("spreadsheet"), "application/vnd.oasis.opendocument.spreadsheet"),
        ("a.txt", "Anteckningar från mötet\r\n".encode(), "text/plain"),
        ("a.csv", CSV, "text/csv"),
        ("bom.csv", b"\xef\xbb\xbf" + CSV, "text/csv"),
    ],
)
def test_accepted_types(wf, name, data, content_type):
    assert add(wf, log(wf, "unit"), name, data).content_type == content_type


@pytest.mark.parametrize(
    "name, data, code, says",
    [
        ("report.pdf", HTML, "bad_type", "a web page"),
        ("page.html", HTML, "bad_type", "a web page"),
        ("notes.txt", b"  \n<html><body>hi</body></html>", "bad_type", "a web page"),
        ("logo.svg", SVG, "bad_type", "SVG"),
        ("logo.png", SVG, "bad_type", "SVG"),
        ("setup.exe", EXE, "bad_type", "a program"),
        ("setup.pdf", EXE, "bad_type", "a program"),
        ("run.txt", b"#!/bin/sh\nrm -rf /\n", "bad_type", "a script"),
        ("bomb.docx", zip_bomb(), "bad_type", "zip bomb"),
        ("macro.docx", ooxml(macros=True), "bad_type", "macros"),
        ("archive.docx", b"PK\x03\x04" + b"\x00" * 100, "bad_type", "damaged"),
        ("old.doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "bad_type", "old-format"),
        ("latin1.csv", "mått;värde\n".encode("latin-1"), "bad_type", "UTF-8"),
        ("nul.txt", b"abc\x00def", "bad_type", "binary"),
        ("utf16.txt", "hej".encode("utf-16"), "bad_type", "binary"),
        ("report.pdf", PNG, "type_mismatch", "PNG image"),
        ("report.docx", ooxml("xlsx"), "type_mismatch", "Excel workbook"),
        ("notes.pdf", b"just some text", "type_mismatch", "text"),
        ("README", b"just some text", "type_mismatch", "no extension"),
    ],
)
def test_refused_files_name_the_file_and_the_reason(wf, settings, name, data, code, says):
    idea = log(wf, "unit")
    error = _refused(lambda: add(wf, idea, name, data))
    assert codes_of(error) == {code}
    assert list(error.error_dict) == ["file"]
    message = error.messages[0]
    assert f"“{name}”" in message and says in message, message
    assert not Attachment.objects.exists() and stored_files(settings) == []


def test_a_plain_zip_renamed_docx_is_refused(wf):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("evil.exe", EXE)
    error = _refused(lambda: add(wf, log(wf, "unit"), "report.docx", buffer.getvalue()))
    assert codes_of(error) == {"bad_type"} and "a zip archive" in error.messages[0]


def test_a_zip_of_too_many_entries_is_refused(wf, monkeypatch):
    monkeypatch.setattr(attachments_module, "MAX_ZIP_ENTRIES", 50)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", ooxml_manifest())
        for i in range(60):
            archive.writestr(f"word/part{i}.xml", "<x/>")
    error = _refused(lambda: add(wf, log(wf, "unit"), "many.docx", buffer.getvalue()))
    assert "61 entries" in error.messages[0]


def test_a_zip_that_unpacks_to_too_much_is_refused(wf, monkeypatch):
    monkeypatch.setattr(attachments_module, "MAX_ZIP_UNPACKED", 100_000)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", ooxml_manifest())
        archive.writestr("word/document.xml", "<w>" + "tack " * 30_000 + "</w>")
    error = _refused(lambda: add(wf, log(wf, "unit"), "big.docx", buffer.getvalue()))
    assert "unpacks to" in error.messages[0]


def test_too_large(wf, settings):
    settings.LHS_ATTACHMENT_MAX_BYTES = 1000
    idea = log(wf, "unit")
    error = _refused(lambda: add(wf, idea, "big.txt", b"x" * 1001))
    assert codes_of(error) == {"too_large"}
    assert "“big.txt”" in error.messages[0] and "1000" in error.messages[0].replace("\xa0", "")
    assert add(wf, idea, "fits.txt", b"x" * 1000).size == 1000


def test_too_large_when_the_size_is_not_told(wf, settings):
    """A file object without a size (or one that lies) is measured while it is read."""
    settings.LHS_ATTACHMENT_MAX_BYTES = 1000
    liar = File(io.BytesIO(b"y" * 5000), name="liar.txt")
    liar.size = 10
    error = _refused(
        lambda: attachment_add(user=wf.people["chair"], initiative=log(wf, "unit"), upload=liar)
    )
    assert codes_of(error) == {"too_large"}


def test_empty(wf):
    assert codes_of(_refused(lambda: add(wf, log(wf, "unit"), "e.txt", b""))) == {"empty"}


def test_at_most_so_many_files_per_initiative(wf, settings):
    settings.LHS_ATTACHMENTS_PER_INITIATIVE = 2
    idea = log(wf, "unit")
    add(wf, idea, "1.txt", b"one")
    add(wf, idea, "2.txt", b"two")
    assert codes_of(_refused(lambda: add(wf, idea, "3.txt", b"three"))) == {"too_many"}
    assert add(wf, log(wf, "unit", title="Another"), "3.txt", b"three")


def test_the_same_file_twice_is_attached_once(wf):
    idea = log(wf, "unit")
    add(wf, idea, "plan.pdf")
    error = _refused(lambda: add(wf, idea, "plan (1).pdf"))
    assert codes_of(error) == {"conflict"} and "“plan.pdf”" in error.messages[0]
    assert Attachment.objects.count() == 1
    # The same file on another initiative is another attachment.
    add(wf, log(wf, "unit", title="Other"), "plan.pdf")


@pytest.mark.parametrize(
    "given, kept",
    [
        ("../../../etc/cron.d/evil.txt", "evil.txt"),
        ("..\\..\\windows\\system32\\evil.txt", "evil.txt"),
        ("/absolute/path.txt", "path.txt"),
        ("C:\\Users\\me\\notes.txt", "notes.txt"),
        ("..", "attachment"),
        ("bad\u202etxt.exe.txt", "badtxt.exe.txt"),  # the right-to-left override is gone
        ("line\nbreak\r\tand\x07bell.txt", "linebreakandbell.txt"),
        ("  .hidden.txt. ", "hidden.txt"),
        ('what<>:"|?*.txt', "what_______.txt"),
        ("Årsrapport.txt", "Årsrapport.txt"),
        ("A\u030arsrapport.txt", "Årsrapport.txt"),  # decomposed Å, composed
    ],
)
def test_names_are_cleaned(wf, settings, given, kept):
    if given == "..":
        assert clean_name(given) == kept
        return
    attachment = add(wf, log(wf, "unit"), given, b"some notes")
    assert attachment.original_name == kept
    # The file itself lands under MEDIA_ROOT/attachments whatever the name said.
    (path,) = stored_files(settings)
    assert path.is_relative_to(Path(settings.MEDIA_ROOT) / "attachments")


def test_a_long_name_keeps_its_extension():
    name = clean_name("å" * 400 + ".xlsx")
    assert len(name) == attachments_module.MAX_NAME and name.endswith("å.xlsx")


def test_content_disposition_for_swedish_and_plain_names():
    assert content_disposition("plan.pdf") == 'attachment; filename="plan.pdf"'
    assert content_disposition("Årsrapport.pdf") == (
        "attachment; filename=\"Arsrapport.pdf\"; filename*=UTF-8''%C3%85rsrapport.pdf"
    )
    assert content_disposition("日本.pdf").startswith('attachment; filename="__.pdf"; filename*=')


# --- nothing half-written -------------------------------------------------------------------


@pytest.mark.parametrize("failure", [IntegrityError, DatabaseError])
def test_a_failed_insert_leaves_no_row_and_no_file(wf, settings, monkeypatch, failure):
    idea = log(wf, "unit")

    def fail(self, *args, **kwargs):
        raise failure("the database refused the row")

    monkeypatch.setattr(Attachment, "save", fail)
    with pytest.raises(failure):
        add(wf, idea)
    monkeypatch.undo()
    assert not Attachment.objects.exists()
    assert stored_files(settings) == []


@pytest.mark.django_db(transaction=True)
def test_a_failed_commit_leaves_no_row_and_no_file(wf, settings, monkeypatch):
    """The insert succeeds but the COMMIT fails (a lost connection, a deferred constraint)."""
    from django.db import connections

    idea = log(wf, "unit")
    wrapper = connections["default"]

    def commit_fails():
        raise DatabaseError("connection lost at commit")

    monkeypatch.setattr(wrapper, "commit", commit_fails)
    with pytest.raises(DatabaseError, match="lost at commit"):
        add(wf, idea)
    monkeypatch.undo()
    assert not Attachment.objects.exists()
    assert stored_files(settings) == []


def test_a_rolled_back_outer_transaction_leaves_a_file_the_sweep_removes(wf, settings):
    idea = log(wf, "unit")
    keep = add(wf, idea, "keep.pdf")
    with pytest.raises(RuntimeError), transaction.atomic():
        add(wf, idea, "lost.txt", b"rolled back")
        raise RuntimeError("the caller fails after attaching")
    assert list(Attachment.objects.values_list("original_name", flat=True)) == ["keep.pdf"]
    assert len(stored_files(settings)) == 2
    # Too young to be swept (it could be an upload still in its transaction) …
    assert attachment_files_sweep() == 0
    # … an hour later it goes; the attached file stays.
    from datetime import timedelta

    assert attachment_files_sweep(older_than=timedelta(0)) == 1
    assert stored_files(settings) == [Path(keep.file.path)]
    assert attachment_files_sweep(older_than=timedelta(0)) == 0


def test_the_sweep_with_nothing_stored(wf):
    assert attachment_files_sweep() == 0
