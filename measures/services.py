"""Writes for measures and data: import batches from upload to observations."""

from __future__ import annotations

import hashlib
import logging
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files.base import File
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from forums.rules import is_support_staff
from units.audit import audit_record

from .bulk import ObservationWriter, RowsAlreadyPresent
from .enums import ImportSource, ImportStatus, RowShape, Scope
from .importing import MAX_ERRORS, FileRejected, ImportFile, MeasureSpec, RowError
from .models import ImportBatch, Measure
from .rules import uploadable_units

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
#: A queued batch whose message has not been picked up after this long is sent again.
REQUEUE_AFTER = timedelta(minutes=10)
#: A running batch not locked by any transaction (PostgreSQL) has lost its worker.
DEAD_AFTER_LOCKED = timedelta(minutes=1)
#: Without row locks (SQLite) a batch is presumed dead only after the task's time limit.
DEAD_AFTER_UNLOCKED = timedelta(minutes=65)


def _progress_key(batch_id: int) -> str:
    return f"lhs:import-progress:{batch_id}"


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
            _("The file is %(size)s MB; the largest accepted is %(max)s MB.")
            % {"size": size // 2**20, "max": settings.LHS_IMPORT_MAX_BYTES // 2**20},
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


def _enqueue(batch_id: int) -> None:
    from .tasks import import_batch_process_task

    import_batch_process_task.delay(batch_id)


def import_batch_progress(batch: ImportBatch) -> dict:
    """Status and progress for the progress bar; the counts live in the cache while running."""
    progress = {"status": batch.status, "rows_done": 0, "rows_estimated": 0, "percent": 0}
    if batch.is_finished:
        progress.update(rows_done=batch.rows_total, rows_estimated=batch.rows_total, percent=100)
    elif batch.status == ImportStatus.RUNNING:
        running = cache.get(_progress_key(batch.pk)) or {}
        done, estimated = running.get("rows_done", 0), running.get("rows_estimated", 0)
        progress.update(rows_done=done, rows_estimated=estimated)
        progress["percent"] = min(99, int(100 * done / estimated)) if estimated else 0
    return progress


def import_batch_process(*, batch_id: int) -> ImportBatch | None:
    """Claim a queued batch and import it: validate every row, then write all or nothing.

    Returns None when another worker has it (or it is finished): safe to call twice.
    """
    claimed = ImportBatch.objects.filter(pk=batch_id, status=ImportStatus.QUEUED).update(
        status=ImportStatus.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    batch = ImportBatch.objects.select_related("uploaded_by").get(pk=batch_id)
    try:
        with translation.override(batch.language):
            _import(batch)
    except DatabaseError:
        # Transient (connection lost, deadlock): hand it back for the retry or the sweeper.
        ImportBatch.objects.filter(pk=batch_id, status=ImportStatus.RUNNING).update(
            status=ImportStatus.QUEUED
        )
        raise
    except Exception:
        logger.exception("Import batch %s failed", batch_id)
        with translation.override(batch.language):
            message = _("The import failed on the server. Support has been notified.")
        ImportBatch.objects.filter(pk=batch_id).update(
            status=ImportStatus.FAILED, message=message, finished_at=timezone.now()
        )
    finally:
        cache.delete(_progress_key(batch_id))
    batch.refresh_from_db()
    return batch


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
    if duplicate is not None:
        _finish(
            batch,
            ImportStatus.SUCCEEDED,
            shape=duplicate.shape,
            rows_total=duplicate.rows_total,
            rows_new=0,
            rows_existing=duplicate.rows_total,
            duplicate_of=duplicate,
            message=_("This file is identical to batch #%(id)s; nothing new was imported.")
            % {"id": duplicate.pk},
        )
        return
    units = dict(Unit.objects.values_list("code", "id"))
    key = _progress_key(batch.pk)
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
            )

        try:
            rows = read()
        except FileRejected as rejected:
            _reject(batch, rejected.errors, len(rejected.errors))
            if rejected.personal_numbers:
                # The one file never kept: identity numbers must not stay on our disks.
                transaction.on_commit(lambda: batch.file.delete(save=False))
                batch.message += " " + _("The file has been deleted.")
                batch.save(update_fields=["message"])
            return
        batch.shape = rows.shape
        try:
            try:
                # Optimistic: a new extract's rows are all new, and go straight in.
                new = _write_rows(batch, rows, key, direct=rows.shape == RowShape.PATIENT)
            except RowsAlreadyPresent:
                # Some rows are stored already: read the file again, through staging.
                rows = read()
                new = _write_rows(batch, rows, key, direct=False)
        except _Rejected as rejected:
            _reject(batch, rejected.errors, rejected.count, rows_total=rows.rows_total)
            return
        _finish(
            batch,
            ImportStatus.SUCCEEDED,
            shape=rows.shape,
            rows_total=rows.rows_total,
            rows_new=new,
            rows_existing=rows.rows_total - new,
            message=_("%(new)s new rows imported; %(existing)s were already present.")
            % {"new": new, "existing": rows.rows_total - new},
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


def _write_rows(batch: ImportBatch, rows: ImportFile, key: str, *, direct: bool) -> int:
    """Validate every row while writing them, in a savepoint; returns how many were new.

    Raises _Rejected (the savepoint is rolled back: nothing stays written) when any row is
    invalid, and RowsAlreadyPresent when a direct write meets a stored row.
    """
    with transaction.atomic(), ObservationWriter(batch.pk, direct=direct) as writer:
        for chunk in rows.chunks():
            if not rows.error_count:
                writer.write(chunk)
            cache.set(
                key,
                {"rows_done": rows.rows_total, "rows_estimated": rows.estimated_rows},
                timeout=3600,
            )
        if rows.error_count:
            raise _Rejected(rows.errors, rows.error_count)
        if rows.rows_total == 0:
            raise _Rejected([RowError(2, "", "", _("The file has no data rows."))], 1)
        conflicts = writer.conflicting_periods(MAX_ERRORS)
        if conflicts:
            raise _Rejected(_conflict_errors(conflicts), len(conflicts))
        return writer.finish()


class _Rejected(Exception):
    def __init__(self, errors: list[RowError], count: int):
        self.errors, self.count = errors, count


def _conflict_errors(conflicts: list[tuple]) -> list[RowError]:
    return [
        RowError(
            file_row,
            "numerator",
            "",
            _(
                "This period is already imported with numerator %(numerator)s and "
                "denominator %(denominator)s (batch #%(batch)s). To correct it, "
                "revert that batch first."
            )
            % {"numerator": numerator, "denominator": denominator, "batch": batch_id},
        )
        for file_row, numerator, denominator, batch_id in conflicts
    ]


def _storable(error: dict) -> dict:
    """PostgreSQL's text and jsonb cannot hold NUL, which a binary file's cells may contain."""
    return {
        key: value.replace("\x00", "\ufffd") if isinstance(value, str) else value
        for key, value in error.items()
    }


def _reject(batch: ImportBatch, errors: list[RowError], count: int, rows_total: int = 0) -> None:
    _finish(
        batch,
        ImportStatus.REJECTED,
        shape=batch.shape,
        rows_total=rows_total,
        error_count=count,
        errors=[_storable(error.as_dict()) for error in errors[:MAX_ERRORS]],
        message=_(
            "The file was rejected with %(count)s problems; nothing was imported. Correct the "
            "rows listed and upload the whole file again."
        )
        % {"count": count},
    )


def import_batches_sweep() -> dict[str, int]:
    """Re-queue batches whose message or worker was lost; fail those that keep failing.

    Runs every minute from beat. On PostgreSQL a running batch's row is locked by its worker's
    transaction, so ``SKIP LOCKED`` finds exactly the abandoned ones.
    """
    now = timezone.now()
    requeued, failed = [], 0
    with transaction.atomic():
        lost_messages = ImportBatch.objects.filter(
            status=ImportStatus.QUEUED, enqueued_at__lt=now - REQUEUE_AFTER
        )
        if connection.features.has_select_for_update_skip_locked:
            dead = ImportBatch.objects.select_for_update(skip_locked=True).filter(
                status=ImportStatus.RUNNING, started_at__lt=now - DEAD_AFTER_LOCKED
            )
        else:
            dead = ImportBatch.objects.filter(
                status=ImportStatus.RUNNING, started_at__lt=now - DEAD_AFTER_UNLOCKED
            )
        for batch in [*lost_messages, *dead]:
            if batch.attempts >= MAX_ATTEMPTS:
                failed += 1
                with translation.override(batch.language):
                    message = _(
                        "The import was interrupted %(attempts)s times and has been stopped. "
                        "Nothing was imported; contact the support unit."
                    ) % {"attempts": batch.attempts}
                ImportBatch.objects.filter(pk=batch.pk).update(
                    status=ImportStatus.FAILED, message=message, finished_at=now
                )
                continue
            ImportBatch.objects.filter(pk=batch.pk).update(
                status=ImportStatus.QUEUED, enqueued_at=now
            )
            requeued.append(batch.pk)
        for batch_id in requeued:
            transaction.on_commit(lambda batch_id=batch_id: _enqueue(batch_id))
    return {"requeued": len(requeued), "failed": failed}


def import_batch_revert(*, batch: ImportBatch, user) -> int:
    """Delete the observations a batch added (to correct a period); returns how many."""
    from .rules import can_revert_batch

    if not can_revert_batch(user, batch):
        raise ValidationError(_("You may not revert this batch."), code="permission")
    from .aggregation import batch_windows

    with transaction.atomic():
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
            status=ImportStatus.REVERTED,
            message=_("Reverted by %(user)s: %(count)s rows removed.")
            % {"user": user.get_username(), "count": deleted},
        )
    return deleted
