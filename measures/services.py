"""Writes for measures and data: import batches from upload to observations."""

from __future__ import annotations

import hashlib
import json
import logging
import math
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from forums.rules import is_support_staff
from units.audit import audit_record

from .bulk import ObservationWriter, RowsAlreadyPresent
from .enums import ImportSource, ImportStatus, RowShape, Scope
from .importing import MAX_ERRORS, FileRejected, ImportFile, MeasureSpec, RowError, summarise
from .models import ImportBatch, Measure
from .problems import STORED_ERRORS, clip, render, report_csv
from .rules import uploadable_units, visible_batches

logger = logging.getLogger(__name__)

#: Faults of the database connection itself (lost, deadlock, serialisation): worth a retry.
#: Anything else a database says (data too long, a constraint) is the same on every attempt.
INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError)

MAX_ATTEMPTS = 3
#: A queued batch whose message has not been picked up after this long is sent again, in case
#: the broker lost it in a way the sweeper could not see (a restart it detects is sooner).
REQUEUE_AFTER = timedelta(minutes=10)
#: A batch that could not be sent (broker away) waits this long for its upload's own attempt.
SEND_GRACE = timedelta(seconds=5)
#: Between the claim and the row lock a live worker holds its batch without a lock this long.
CLAIM_GRACE = timedelta(seconds=10)
#: A key the sweeper keeps in the cache; gone means Redis (cache and broker) was emptied.
_BROKER_EPOCH_KEY = "lhs:broker-epoch"


def _progress_key(batch_id: int) -> str:
    return f"lhs:import-progress:{batch_id}"


def _progress_set(batch_id: int, value: dict) -> None:
    """Progress is a nicety for the progress bar: a cache outage must never fail an import."""
    try:
        cache.set(_progress_key(batch_id), value, timeout=3600)
    except Exception:
        logger.warning("Progress of import batch %s not stored", batch_id)


def _progress_get(batch_id: int) -> dict:
    try:
        return cache.get(_progress_key(batch_id)) or {}
    except Exception:
        logger.warning("Progress of import batch %s not read", batch_id)
        return {}


def _progress_clear(batch_id: int) -> None:
    try:
        cache.delete(_progress_key(batch_id))
    except Exception:
        logger.warning("Progress of import batch %s not cleared", batch_id)


def import_batch_create(
    *,
    user,
    upload: File,
    source: str = ImportSource.UPLOAD,
    language: str = "en",
    enqueue: bool = True,
) -> ImportBatch:
    """Keep the uploaded file with a new batch and queue its import once committed.

    ``enqueue=False`` is for callers that process the batch themselves (the management
    command, the demo loader); the sweeper would still pick it up if they did not.

    Raises ValidationError when the user may not upload at all or the file is too large;
    row-level problems are found by the import itself and reported on the batch.
    """
    if not uploadable_units(user).exists():
        raise ValidationError(_("You may not import data for any unit."), code="permission")
    size = getattr(upload, "size", None) or 0
    if size > settings.LHS_IMPORT_MAX_BYTES:
        raise ValidationError(
            _("The file is %(size)s; the largest accepted is %(max)s.")
            % dict(zip(("size", "max"), _sizes(size, settings.LHS_IMPORT_MAX_BYTES), strict=True)),
            code="too_large",
        )
    if size == 0:
        raise ValidationError(_("The file is empty."), code="empty")
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    name = Path(upload.name or "upload.csv").name
    with transaction.atomic():
        batch = ImportBatch(
            uploaded_by=user,
            source=source,
            original_name=name[:255],
            size_bytes=size,
            checksum=digest.hexdigest(),
            language=language[:8],
            enqueued_at=timezone.now(),
        )
        batch.file.save(name, upload, save=False)
        batch.save()
        audit_record(actor=user, action="import_upload", target=f"import batch {batch.pk}")
        if enqueue:
            # Robust: with the broker down the batch is saved all the same and the sweeper
            # sends it later; the uploader must not see an error for a file we hold.
            transaction.on_commit(lambda: _enqueue(batch.pk), robust=True)
    return batch


def _sizes(size: int, limit: int) -> tuple[str, str]:
    """Two file sizes as a reader compares them: in MB, or in bytes where the MB agree."""
    from django.utils.formats import number_format

    shown = [f"{number_format(n / 2**20, 1, use_l10n=True)} MB" for n in (size, limit)]
    if shown[0] == shown[1]:
        shown = [
            _("%(bytes)s bytes")
            % {"bytes": number_format(n, 0, use_l10n=True, force_grouping=True)}
            for n in (size, limit)
        ]
    return shown[0], shown[1]


def _message(code: str, **params) -> dict:
    """A batch message's fields: the code and parameters that are rendered in each reader's
    language (problems.batch_message), and the sentence in the active language as a fallback
    for readers of the bare column."""
    return {"message_code": code, "message_params": params, "message": render(code, params)}


def _enqueue(batch_id: int) -> None:
    """Send the batch to a worker; with the broker away, mark it unsent for the sweeper.

    The upload itself has succeeded either way: the file and the batch are in the database.
    """
    from .tasks import import_batch_process_task

    try:
        import_batch_process_task.delay(batch_id)
    except Exception:
        logger.warning("Import batch %s not sent; the sweeper sends it later", batch_id)
        ImportBatch.objects.filter(pk=batch_id, status=ImportStatus.QUEUED).update(enqueued_at=None)


def import_batch_progress(batch: ImportBatch) -> dict:
    """Status and progress for the progress bar; the counts live in the cache while running."""
    progress = {"status": batch.status, "rows_done": 0, "rows_estimated": 0, "percent": 0}
    if batch.is_finished:
        progress.update(rows_done=batch.rows_total, rows_estimated=batch.rows_total, percent=100)
    elif batch.status == ImportStatus.RUNNING:
        running = _progress_get(batch.pk)
        done, estimated = running.get("rows_done", 0), running.get("rows_estimated", 0)
        progress.update(rows_done=done, rows_estimated=estimated)
        progress["percent"] = min(99, int(100 * done / estimated)) if estimated else 0
    return progress


def import_batch_process(*, batch_id: int) -> ImportBatch | None:
    """Claim a queued batch and import it: validate every row, then write all or nothing.

    Returns None when another worker has it (or it is finished): safe to call twice.
    """
    from lhs.workers import worker_id

    claimed = ImportBatch.objects.filter(pk=batch_id, status=ImportStatus.QUEUED).update(
        status=ImportStatus.RUNNING,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
        claimed_by=worker_id(),
    )
    if not claimed:
        return None
    batch = ImportBatch.objects.select_related("uploaded_by").get(pk=batch_id)
    try:
        with translation.override(batch.language):
            _import(batch)
    except INFRASTRUCTURE_ERRORS:
        if batch.attempts >= MAX_ATTEMPTS:
            logger.exception("Import batch %s failed on its last attempt", batch_id)
            _fail_interrupted(batch, timezone.now())
            return batch
        # Transient (connection lost, deadlock): hand it back for the task's retry. It counts
        # as sent now, so the sweeper does not send it a second time while the retry waits.
        ImportBatch.objects.filter(pk=batch_id, status=ImportStatus.RUNNING).update(
            status=ImportStatus.QUEUED, enqueued_at=timezone.now()
        )
        raise
    except Exception:
        logger.exception("Import batch %s failed", batch_id)
        told = _tell_support_of_failure(batch)
        with translation.override(batch.language):
            message = _message("batch_failed_told" if told else "batch_failed_untold")
        ImportBatch.objects.filter(pk=batch_id).update(
            status=ImportStatus.FAILED, finished_at=timezone.now(), **message
        )
    finally:
        _progress_clear(batch_id)
    batch.refresh_from_db()
    return batch


def _tell_support_of_failure(batch: ImportBatch) -> bool:
    """E-mail the support unit's members about a batch that failed on the server.

    Returns whether anyone was told, so the uploader reads only what is true.
    """
    from django.core.mail import send_mail

    from forums.selectors import support_staff_emails

    recipients = support_staff_emails()
    if not recipients:
        return False
    url = f"{settings.LHS_SITE_URL.rstrip('/')}/measures/imports/{batch.pk}/"
    try:
        send_mail(
            subject=f"[LHS] Import batch #{batch.pk} failed on the server",
            message=(
                f"Import batch #{batch.pk} ({batch.original_name}, uploaded by "
                f"{batch.uploaded_by.get_username()}) failed with an unexpected error; nothing "
                f"was imported. The worker's log has the traceback.\n\n{url}\n"
            ),
            from_email=None,
            recipient_list=recipients,
        )
    except Exception:
        logger.exception("Could not e-mail the support unit about batch %s", batch.pk)
        return False
    return True


def _measure_specs() -> dict[str, MeasureSpec]:
    from units.models import Unit

    department_units: dict[int, set[int]] = {}
    for unit_id, department_id in Unit.objects.values_list("id", "department_id"):
        department_units.setdefault(department_id, set()).add(unit_id)
    specs = {}
    for m in Measure.objects.active().select_related("unit", "department"):
        # Local measures hold data only from their owner's units (DESIGN.md §4, scope).
        unit_ids = None
        if m.scope == Scope.UNIT:
            unit_ids = frozenset({m.unit_id})
        elif m.scope == Scope.DEPARTMENT:
            unit_ids = frozenset(department_units.get(m.department_id, ()))
        specs[m.code] = MeasureSpec(
            id=m.id,
            code=m.code,
            kind=m.kind,
            frequency=m.frequency,
            value_min=m.value_min,
            value_max=m.value_max,
            unit_ids=unit_ids,
            owner=str(m.owner_node or ""),
        )
    return specs


def _may_stand_in(duplicate: ImportBatch, user) -> bool:
    """May the uploader's batch point at ``duplicate`` instead of importing its rows?

    Only when the uploader could have imported every one of its rows now: the same units
    (within their rights, still active) and measures (still active). Otherwise the file goes
    through the full import, which reports each row it may not take.
    """
    from units.models import Unit

    from .aggregation import batch_windows

    pairs = batch_windows(duplicate.pk).keys()
    unit_ids = {unit_id for _measure, unit_id in pairs}
    measure_ids = {measure_id for measure_id, _unit in pairs}
    allowed = _allowed_unit_ids(user)
    if allowed is not None and not unit_ids <= allowed:
        return False
    if Unit.objects.filter(pk__in=unit_ids, active=False).exists():
        return False
    return not Measure.objects.filter(pk__in=measure_ids, active=False).exists()


def _allowed_unit_ids(user) -> set[int] | None:
    if user.is_superuser or is_support_staff(user):
        return None
    return set(uploadable_units(user).values_list("id", flat=True))


def _finish(batch: ImportBatch, status: str, **fields) -> None:
    for name, value in fields.items():
        setattr(batch, name, value)
    batch.status = status
    batch.finished_at = timezone.now()
    batch.save(
        update_fields=["status", "finished_at", *fields.keys()],
    )


def _import(batch: ImportBatch) -> None:
    from units.models import Unit

    # Only a batch that wrote every one of its rows itself stands in for them: rows it found
    # already present belong to other batches, which may have been reverted since (so does a
    # duplicate's, which still says "succeeded" but holds nothing).
    duplicate = (
        ImportBatch.objects.filter(
            checksum=batch.checksum, status=ImportStatus.SUCCEEDED, rows_existing=0
        )
        .exclude(pk=batch.pk)
        .order_by("created_at")
        .first()
    )
    if duplicate is not None and _may_stand_in(duplicate, batch.uploaded_by):
        _finish(
            batch,
            ImportStatus.SUCCEEDED,
            shape=duplicate.shape,
            rows_total=duplicate.rows_total,
            rows_new=0,
            rows_existing=duplicate.rows_total,
            duplicate_of=duplicate,
            **_message("batch_duplicate", id=duplicate.pk),
        )
        return
    units = dict(Unit.objects.values_list("code", "id"))
    inactive_units = set(Unit.objects.filter(active=False).values_list("id", flat=True))
    with transaction.atomic():
        # Held until commit: the sweeper treats an unlocked running batch as abandoned.
        ImportBatch.objects.select_for_update().filter(pk=batch.pk).exists()

        def read():
            return ImportFile(
                batch.file.path,
                measures=_measure_specs(),
                units=units,
                allowed_unit_ids=_allowed_unit_ids(batch.uploaded_by),
                today=timezone.localdate(),
                subject_secret=settings.SUBJECT_KEY_SECRET.encode(),
                inactive_unit_ids=inactive_units,
            )

        try:
            rows = read()
        except FileRejected as rejected:
            _reject(batch, rejected.errors, len(rejected.errors), rows_total=rejected.rows_total)
            if rejected.personal_numbers:
                # The one file never kept: identity numbers must not stay on our disks.
                transaction.on_commit(lambda: batch.file.delete(save=False))
                batch.message_params = {**batch.message_params, "file_deleted": True}
                batch.message += " " + _("The file has been deleted.")
                batch.save(update_fields=["message", "message_params"])
            return
        batch.shape = rows.shape
        try:
            try:
                # Optimistic: a new extract's rows are all new, and go straight in.
                new = _write_rows(batch, rows, direct=rows.shape == RowShape.PATIENT)
            except RowsAlreadyPresent:
                # Some rows are stored already: read the file again, through staging.
                rows = read()
                new = _write_rows(batch, rows, direct=False)
        except _Rejected as rejected:
            _reject(
                batch,
                rejected.errors,
                rejected.count,
                rows_total=rows.rows_total,
                summary=rejected.summary,
            )
            return
        _finish(
            batch,
            ImportStatus.SUCCEEDED,
            shape=rows.shape,
            rows_total=rows.rows_total,
            rows_new=new,
            rows_existing=rows.rows_total - new,
            **_message("batch_imported", new=new, existing=rows.rows_total - new),
        )
        if new:
            # Recompute the series this batch touched once its rows are committed; robust: a
            # broker outage must not fail a committed import (the nightly run catches up).
            transaction.on_commit(lambda: _enqueue_series_refresh(batch.pk), robust=True)


def _enqueue_series_refresh(batch_id: int) -> None:
    from .tasks import series_refresh_for_batch_task

    series_refresh_for_batch_task.delay(batch_id)


def _enqueue_series_windows(windows: list[list]) -> None:
    from .tasks import series_refresh_windows_task

    series_refresh_windows_task.delay(windows)


def _write_rows(batch: ImportBatch, rows: ImportFile, *, direct: bool) -> int:
    """Validate every row while writing them, in a savepoint; returns how many were new.

    Raises _Rejected (the savepoint is rolled back: nothing stays written) when any row is
    invalid, and RowsAlreadyPresent when a direct write meets a stored row.
    """
    with transaction.atomic(), ObservationWriter(batch.pk, direct=direct) as writer:
        for chunk in rows.chunks():
            if not rows.error_count:
                writer.write(chunk)
            _progress_set(
                batch.pk, {"rows_done": rows.rows_total, "rows_estimated": rows.estimated_rows}
            )
        if rows.error_count:
            raise _Rejected(rows.errors, rows.error_count, rows.problem_summary())
        if rows.rows_total == 0:
            raise _Rejected([RowError(2, "", "", "no_data_rows")], 1)
        conflicts = writer.conflicting_periods(MAX_ERRORS)
        if conflicts:
            raise _Rejected(_conflict_errors(conflicts, uploader=batch.uploaded_by), len(conflicts))
        return writer.finish()


class _Rejected(Exception):
    def __init__(self, errors: list[RowError], count: int, summary: list[dict] | None = None):
        self.errors, self.count, self.summary = errors, count, summary


def _conflict_errors(conflicts: list[tuple], *, uploader) -> list[RowError]:
    """Rows that would overwrite a stored period; the other batch is named only to an
    uploader who may see it (its number is no one else's business)."""
    visible = set(
        visible_batches(uploader)
        .filter(pk__in={batch_id for *_rest, batch_id in conflicts})
        .values_list("pk", flat=True)
    )
    return [
        RowError(
            file_row,
            "numerator",
            "",
            "period_conflict" if batch_id in visible else "period_conflict_hidden",
            {"numerator": numerator, "denominator": denominator}
            | ({"batch": batch_id} if batch_id in visible else {}),
        )
        for file_row, numerator, denominator, batch_id in conflicts
    ]


def _storable(item):
    """A report entry PostgreSQL can store: no NUL (text and jsonb cannot hold it), and no
    string longer than PARAM_CHARS, however deep in the parameters."""
    if isinstance(item, str):
        return clip(item, PARAM_CHARS)
    if isinstance(item, dict):
        return {str(key): _storable(value) for key, value in item.items()}
    if isinstance(item, list | tuple):
        return [_storable(value) for value in item[:STORED_ERRORS]]
    if isinstance(item, float) and not math.isfinite(item):
        return str(item)  # JSON has no NaN or infinity
    return item


#: Longest text kept in a parameter (cell values are cut shorter, when read).
PARAM_CHARS = 1000
#: A stored report over this many bytes of JSON keeps fewer entries (the CSV has them all).
MAX_REPORT_JSON = 256 * 1024


def _reject(
    batch: ImportBatch,
    errors: list[RowError],
    count: int,
    rows_total: int = 0,
    summary: list[dict] | None = None,
) -> None:
    """End a batch rejected, with a bounded report: the first STORED_ERRORS problems and every
    distinct problem once (problem_summary) on the row, every problem in a CSV file beside it.

    A rejection is never retried: should the database refuse the report all the same (a
    DataError is the same on every attempt), the batch ends rejected with its message only.
    """
    stored = [_storable(error.as_dict()) for error in errors[:STORED_ERRORS]]
    kinds = _storable(summarise(errors) if summary is None else summary)
    while stored and len(json.dumps(stored)) + len(json.dumps(kinds)) > MAX_REPORT_JSON:
        stored = stored[: len(stored) // 2]
    if errors:
        batch.report.save(
            f"batch-{batch.pk}.csv", ContentFile(report_csv(errors[:MAX_ERRORS])), save=False
        )
    fields = dict(
        shape=batch.shape,
        rows_total=rows_total,
        error_count=count,
        report=batch.report,
        **_message("batch_rejected", count=count),
    )
    try:
        with transaction.atomic():
            _finish(batch, ImportStatus.REJECTED, errors=stored, problem_summary=kinds, **fields)
    except INFRASTRUCTURE_ERRORS:
        raise
    except DatabaseError:
        logger.exception("Report of rejected import batch %s not stored", batch.pk)
        # The message and the CSV still tell what is wrong; the counts fit their columns.
        fields.update(error_count=min(count, 2**31 - 1), rows_total=min(rows_total, 2**31 - 1))
        _finish(batch, ImportStatus.REJECTED, errors=[], problem_summary=[], **fields)


def import_batches_sweep() -> dict[str, int]:
    """Send again what a broker or a worker lost; fail batches that keep failing.

    Runs every 15 s from beat and touches only batches nobody is working on:

    - queued and never sent (the broker was away at upload), or sent before the broker was
      emptied (Redis keeps its queue in memory: a restart loses it), or sent long ago;
    - running, but whose worker is gone: on PostgreSQL its row is not locked (the worker's
      transaction holds the lock from just after the claim to the end, so ``SKIP LOCKED``
      finds exactly the abandoned ones); on SQLite its worker's heartbeat has stopped.
    """
    from lhs.workers import worker_is_gone

    now = timezone.now()
    sent_before = now - REQUEUE_AFTER
    if _broker_was_emptied():
        sent_before = now - SEND_GRACE
    requeued, failed = [], 0
    with transaction.atomic():
        lost_messages = ImportBatch.objects.filter(
            Q(enqueued_at__lt=sent_before)
            | Q(enqueued_at__isnull=True, created_at__lt=now - SEND_GRACE),
            status=ImportStatus.QUEUED,
        )
        running = ImportBatch.objects.filter(
            status=ImportStatus.RUNNING, started_at__lt=now - CLAIM_GRACE
        )
        if connection.features.has_select_for_update_skip_locked:
            dead = list(running.select_for_update(skip_locked=True))
        else:
            dead = [batch for batch in running if worker_is_gone(batch.claimed_by)]
        for batch in [*lost_messages, *dead]:
            if batch.attempts >= MAX_ATTEMPTS:
                failed += 1
                _fail_interrupted(batch, now)
                continue
            ImportBatch.objects.filter(pk=batch.pk, status=batch.status).update(
                status=ImportStatus.QUEUED, enqueued_at=now
            )
            requeued.append(batch.pk)
        for batch_id in requeued:
            transaction.on_commit(lambda batch_id=batch_id: _enqueue(batch_id))
    return {"requeued": len(requeued), "failed": failed}


def _fail_interrupted(batch: ImportBatch, now) -> None:
    with translation.override(batch.language):
        message = _message("batch_interrupted", attempts=batch.attempts)
    ImportBatch.objects.filter(pk=batch.pk).update(
        status=ImportStatus.FAILED, finished_at=now, **message
    )


def _broker_was_emptied() -> bool:
    """Did Redis lose its queues since the last sweep? (Then every queued batch is re-sent.)

    Redis here keeps nothing on disk, and the cache shares its server with the broker: a
    marker the sweeper left in the cache and now misses means both were emptied. The first
    sweep after a deployment sees no marker either and re-sends the queue once; a claim is
    atomic, so a second message for a batch costs one UPDATE that changes nothing.
    """
    try:
        return bool(cache.add(_BROKER_EPOCH_KEY, timezone.now().isoformat(), timeout=None))
    except Exception:
        return False


def import_batch_revert(*, batch: ImportBatch, user) -> int:
    """Delete the observations a batch added (to correct a period); returns how many.

    The status moves first, by a conditional update: of two people reverting at once exactly
    one succeeds, the other is told it is reverted already.
    """
    from .rules import can_revert_batch

    if not can_revert_batch(user, batch):
        raise ValidationError(_("You may not revert this batch."), code="permission")
    from .aggregation import batch_windows

    with transaction.atomic():
        now = timezone.now()
        moved = ImportBatch.objects.filter(pk=batch.pk, status=ImportStatus.SUCCEEDED).update(
            status=ImportStatus.REVERTED, reverted_by=user, reverted_at=now
        )
        if not moved:
            raise ValidationError(
                _("This batch has been reverted already, or is not imported."), code="state"
            )
        # Read before the rows go: the series of exactly these units and days are redone.
        windows = [
            [measure_id, unit_id, lo.isoformat(), hi.isoformat()]
            for (measure_id, unit_id), (lo, hi) in batch_windows(batch.pk).items()
        ]
        deleted, _counts = batch.observations.all().delete()
        audit_record(actor=user, action="import_revert", target=f"import batch {batch.pk}")
        if windows:
            transaction.on_commit(lambda: _enqueue_series_windows(windows), robust=True)
        ImportBatch.objects.filter(pk=batch.pk).update(
            **_message("batch_reverted", user=user.get_username(), count=deleted),
        )
    batch.refresh_from_db()
    return deleted
