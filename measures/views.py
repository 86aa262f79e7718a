"""Pages for the measure catalogue and data import. Thin: rules decide, services write."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import get_language, ngettext
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from units.audit import audit_download

from .enums import ImportSource
from .forms import UploadForm
from .problems import batch_message, rendered_errors, rendered_summary, report_download
from .rules import can_revert_batch, can_upload, uploadable_units, visible_batches
from .selectors import measure_catalogue
from .services import import_batch_create, import_batch_progress, import_batch_revert
from .throttling import upload_allowed


def catalogue(request):
    return render(request, "measures/catalogue.html", {"measures": measure_catalogue()})


@require_http_methods(["GET", "POST"])
def upload(request):
    if not can_upload(request.user):
        raise PermissionDenied(_("You may not import data for any unit."))
    # Bound on every POST: a POST with only a file (no other field) is falsy as a QueryDict.
    form = UploadForm(request.POST, request.FILES) if request.method == "POST" else UploadForm()
    status = 200
    if form.is_bound:
        allowed, wait = upload_allowed(request)
        if not allowed:
            minutes = max(1, round((wait or 60) / 60))
            form.add_error(
                None,
                ngettext(
                    "You have reached the limit of uploads an hour. Try again in %(minutes)s minute.",
                    "You have reached the limit of uploads an hour. Try again in %(minutes)s minutes.",
                    minutes,
                )
                % {"minutes": minutes},
            )
            status = 429
    if form.is_bound and status == 200 and form.is_valid():
        try:
            batch = import_batch_create(
                user=request.user,
                upload=form.cleaned_data["file"],
                source=ImportSource.UPLOAD,
                language=get_language() or "en",
            )
        except ValidationError as exc:
            form.add_error("file", exc)
        else:
            return redirect("measures:batch-detail", pk=batch.pk)
    units = uploadable_units(request.user).select_related("department")
    return render(request, "measures/upload.html", {"form": form, "units": units}, status=status)


def batch_list(request):
    batches = visible_batches(request.user)[:200]
    return render(request, "measures/batch_list.html", {"batches": batches})


def batch_detail(request, pk: int):
    batch = get_object_or_404(visible_batches(request.user), pk=pk)
    context = {
        "batch": batch,
        "progress": import_batch_progress(batch),
        "can_revert": can_revert_batch(request.user, batch),
        "message": batch_message(batch, reader=request.user),
        "errors": rendered_errors(batch.errors),
        "problem_summary": rendered_summary(batch.problem_summary),
    }
    return render(request, "measures/batch_detail.html", context)


@require_http_methods(["GET", "HEAD"])
def batch_report(request, pk: int):
    """Every problem of a rejected batch as CSV, in the reader's language."""
    batch = get_object_or_404(visible_batches(request.user), pk=pk)
    if not batch.report:
        raise Http404
    try:
        with batch.report.open("rb") as fh:
            stored = fh.read()
    except FileNotFoundError as exc:
        raise Http404 from exc
    audit_download(request=request, target=f"import batch {batch.pk} problem report")
    response = HttpResponse(report_download(stored), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{batch.pk}-problems.csv"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def batch_progress(request, pk: int):
    """The progress fragment HTMX polls; answers 286 (stop polling) once the batch is done."""
    batch = get_object_or_404(visible_batches(request.user), pk=pk)
    progress = import_batch_progress(batch)
    response = render(
        request, "measures/_batch_progress.html", {"batch": batch, "progress": progress}
    )
    if batch.is_finished and request.htmx:
        # The full report is on the page; reload it once instead of growing the fragment.
        response = HttpResponse(status=286)
        response["HX-Refresh"] = "true"
    return response


@require_POST
def batch_revert(request, pk: int):
    batch = get_object_or_404(visible_batches(request.user), pk=pk)
    try:
        count = import_batch_revert(batch=batch, user=request.user)
    except ValidationError as exc:
        if exc.code == "permission":
            raise PermissionDenied(exc.messages[0]) from exc
        # Someone else was quicker (two people pressing at once): say so, change nothing.
        messages.error(request, exc.messages[0])
        return redirect("measures:batch-detail", pk=batch.pk)
    messages.success(request, _("%(count)s rows removed.") % {"count": count})
    return redirect("measures:batch-detail", pk=batch.pk)
