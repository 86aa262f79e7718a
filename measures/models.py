"""Measure definitions, import batches and observations."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from units.models import Department, Division, Unit

from .enums import (
    Direction,
    Face,
    Frequency,
    ImportSource,
    ImportStatus,
    MeasureKind,
    RowShape,
    Scope,
    SeriesLevel,
)


class MeasureQuerySet(models.QuerySet):
    def active(self):
        return self.filter(active=True)


class Measure(models.Model):
    code = models.SlugField(
        _("code"),
        max_length=64,
        unique=True,
        help_text=_("The code data files use, e.g. honos-change. Cannot change once data exists."),
    )
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("what it means"), blank=True)
    computation = models.TextField(
        _("how it is computed"),
        blank=True,
        help_text=_("Numerator, denominator, inclusions and exclusions, in plain words."),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=MeasureKind.choices)
    direction = models.CharField(
        _("improvement direction"), max_length=8, choices=Direction.choices
    )
    display_unit = models.CharField(
        _("display unit"), max_length=50, blank=True, help_text=_("e.g. %, points, days")
    )
    rate_per = models.PositiveIntegerField(
        _("rate per"),
        null=True,
        blank=True,
        help_text=_("For rates: events per this much exposure, e.g. 1000 (bed days)."),
    )
    target = models.DecimalField(
        _("target"),
        max_digits=12,
        decimal_places=4,
        null=True,
        blank=True,
        help_text=_("In display units; a proportion's target is a percentage (0–100)."),
    )
    frequency = models.CharField(
        _("frequency"), max_length=8, choices=Frequency.choices, default=Frequency.MONTH
    )
    scope = models.CharField(_("scope"), max_length=12, choices=Scope.choices)
    department = models.ForeignKey(
        Department,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="measures",
        verbose_name=_("owning department"),
    )
    unit = models.ForeignKey(
        Unit,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="local_measures",
        verbose_name=_("owning unit"),
    )
    face = models.CharField(_("face"), max_length=16, choices=Face.choices)
    instrument = models.CharField(_("instrument"), max_length=100, blank=True)
    data_source = models.CharField(_("data source"), max_length=200, blank=True)
    value_min = models.FloatField(
        _("lowest valid value"),
        null=True,
        blank=True,
        help_text=_("Lowest valid value of one patient-level row (e.g. 0 for HoNOS)."),
    )
    value_max = models.FloatField(
        _("highest valid value"),
        null=True,
        blank=True,
        help_text=_("Highest valid value of one patient-level row (e.g. 48 for HoNOS)."),
    )
    minimum_n = models.PositiveIntegerField(
        _("minimum n for display"),
        default=5,
        validators=[MinValueValidator(1)],
        help_text=_("Periods with fewer observations are suppressed, never shown as numbers."),
    )
    baseline_points = models.PositiveSmallIntegerField(
        _("baseline points"),
        null=True,
        blank=True,
        validators=[MinValueValidator(12)],
        help_text=_(
            "Compute the control limits from this many first points and extend them forward "
            "(at least 12). Empty: from all points."
        ),
    )
    laney = models.BooleanField(
        _("Laney correction"),
        default=False,
        help_text=_(
            "Use Laney's p′/u′ limits, for proportions and rates with very large denominators."
        ),
    )
    recording_handbook = models.TextField(
        _("recording handbook"),
        blank=True,
        help_text=_(
            "How staff should record the underlying data in the care systems so that the "
            "measure is valid. Shown beside every chart of the measure."
        ),
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_measures",
        verbose_name=_("contact person"),
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    history = HistoricalRecords(excluded_fields=["updated_at"])
    objects = MeasureQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("measure")
        verbose_name_plural = _("measures")
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(scope=Scope.DIVISION, department__isnull=True, unit__isnull=True)
                    | models.Q(scope=Scope.DEPARTMENT, department__isnull=False, unit__isnull=True)
                    | models.Q(scope=Scope.UNIT, unit__isnull=False, department__isnull=True)
                ),
                name="measure_scope_names_its_owner",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    @property
    def owner_node(self):
        return {Scope.UNIT: self.unit, Scope.DEPARTMENT: self.department}.get(self.scope)

    def has_data(self) -> bool:
        return self.pk is not None and self.observations.exists()

    def clean(self):
        errors: dict[str, list] = {}

        def add(field, message):
            errors.setdefault(field, []).append(message)

        if self.scope == Scope.UNIT:
            if not self.unit_id:
                add("unit", _("A unit-scoped (local) measure must name its unit."))
            if self.department_id:
                add(
                    "department", _("A unit-scoped measure is owned by its unit, not a department.")
                )
        elif self.scope == Scope.DEPARTMENT:
            if not self.department_id:
                add("department", _("A department-scoped measure must name its department."))
            if self.unit_id:
                add(
                    "unit", _("A department-scoped measure is owned by its department, not a unit.")
                )
        elif self.scope == Scope.DIVISION and (self.unit_id or self.department_id):
            add("scope", _("A division-wide measure names neither a department nor a unit."))
        if (
            self.target is not None
            and self.kind == MeasureKind.PROPORTION
            and not (0 <= self.target <= 100)
        ):
            add("target", _("A proportion's target is a percentage and must lie in 0–100 %."))
        if (
            self.target is not None
            and self.kind in (MeasureKind.COUNT, MeasureKind.RATE)
            and self.target < 0
        ):
            add("target", _("A count or rate cannot have a negative target."))
        if self.kind == MeasureKind.RATE and not self.rate_per:
            add("rate_per", _("A rate needs its exposure base, e.g. 1000 for per 1,000 bed days."))
        if self.kind != MeasureKind.RATE and self.rate_per:
            add("rate_per", _("Only a rate has an exposure base."))
        if self.target is not None and self.direction == Direction.NEITHER:
            add("target", _("A target needs an improvement direction (up or down)."))
        if (
            self.value_min is not None
            and self.value_max is not None
            and self.value_min > self.value_max
        ):
            add("value_max", _("The highest valid value is below the lowest."))
        if self.laney and self.kind not in (MeasureKind.PROPORTION, MeasureKind.RATE):
            add("laney", _("Laney's correction applies to proportions and rates only."))
        if self.baseline_points is not None and self.baseline_points < 12:
            add("baseline_points", _("A baseline needs at least 12 points."))
        if self.kind == MeasureKind.PROPORTION and (
            self.value_min is not None or self.value_max is not None
        ):
            add("value_min", _("A proportion's rows are 0 or 1; it takes no value range."))
        if self.pk:
            stored = Measure.objects.filter(pk=self.pk).values_list("code", "kind").first()
            if stored and self.has_data():
                if stored[0] != self.code:
                    add("code", _("The code cannot change once data has been imported for it."))
                if stored[1] != self.kind:
                    add("kind", _("The kind cannot change once data has been imported for it."))
        if errors:
            raise ValidationError(errors)


class ImportBatch(models.Model):
    """One uploaded file: kept whole with its report, imported all or nothing."""

    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="import_batches",
        verbose_name=_("uploaded by"),
    )
    source = models.CharField(_("source"), max_length=16, choices=ImportSource.choices)
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/")
    original_name = models.CharField(_("file name"), max_length=255)
    size_bytes = models.BigIntegerField(_("size (bytes)"), default=0)
    checksum = models.CharField(_("SHA-256"), max_length=64, db_index=True)
    status = models.CharField(
        _("status"), max_length=16, choices=ImportStatus.choices, default=ImportStatus.QUEUED
    )
    shape = models.CharField(_("row shape"), max_length=16, choices=RowShape.choices, blank=True)
    rows_total = models.PositiveIntegerField(_("rows"), default=0)
    rows_new = models.PositiveIntegerField(_("new rows"), default=0)
    rows_existing = models.PositiveIntegerField(_("rows already present"), default=0)
    error_count = models.PositiveIntegerField(_("errors"), default=0)
    errors = models.JSONField(_("row errors"), default=list, blank=True)
    #: Each distinct problem once: code, count, first rows and an example (problems.py).
    problem_summary = models.JSONField(_("problem summary"), default=list, blank=True)
    #: Every problem (up to importing.MAX_ERRORS) as CSV; ``errors`` keeps only the first.
    report = models.FileField(_("full report"), upload_to="imports/reports/%Y/%m/", blank=True)
    # Old rows: the sentence as written. New rows: also a code and parameters, rendered in
    # the reader's language (problems.batch_message).
    message = models.TextField(_("message"), blank=True)
    message_code = models.CharField(_("message code"), max_length=40, blank=True)
    message_params = models.JSONField(_("message parameters"), default=dict, blank=True)
    duplicate_of = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("identical to"),
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    # The worker process (host:pid) of the latest attempt: the sweeper re-queues a running
    # batch only once that worker is gone (lhs/workers.py), never one that is merely slow.
    claimed_by = models.CharField(_("worker"), max_length=200, blank=True, editable=False)
    reverted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("reverted by"),
    )
    reverted_at = models.DateTimeField(_("reverted"), null=True, blank=True)
    # The uploader's language, so the report reads in it although a worker writes it.
    language = models.CharField(_("language"), max_length=8, default="en")
    enqueued_at = models.DateTimeField(_("enqueued"), null=True, blank=True)
    created_at = models.DateTimeField(_("uploaded"), auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("import batch")
        verbose_name_plural = _("import batches")
        indexes = [models.Index(fields=["status", "created_at"], name="importbatch_status_created")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.original_name}"

    @property
    def is_finished(self) -> bool:
        return self.status not in (ImportStatus.QUEUED, ImportStatus.RUNNING)

    @property
    def rendered_errors(self) -> list[dict]:
        """The stored report entries, each with its ``message`` in the active language."""
        from .problems import rendered_errors

        return rendered_errors(self.errors)


class Observation(models.Model):
    """One patient-level row (``value``) or one pre-aggregated row (numerator/denominator).

    The primary key is the natural key. ``row_hash`` is, for patient-level rows, a hash of the
    row's content and its occurrence number within the file (two identical ratings on one day
    are two rows, and the same extract uploaded again yields the same keys); for pre-aggregated
    rows it is 0, so one row per measure, unit and period. The key's leading columns are also
    the index every per-series aggregation scans (measure, unit, date range).

    The foreign keys carry no database constraint: on this table of millions of rows the
    per-row constraint triggers cost more than the load itself (DESIGN.md §7). Integrity
    comes from the importer, which resolves ids inside its transaction and locks the measures
    and units it refers to (``FOR KEY SHARE``, what the triggers would do, once per id),
    and from ``on_delete=PROTECT`` on the Django side.
    """

    pk = models.CompositePrimaryKey("measure", "unit", "date", "row_hash")
    measure = models.ForeignKey(
        Measure,
        on_delete=models.PROTECT,
        related_name="observations",
        db_index=False,
        db_constraint=False,
    )
    unit = models.ForeignKey(
        Unit,
        on_delete=models.PROTECT,
        related_name="observations",
        db_index=False,
        db_constraint=False,
    )
    date = models.DateField()
    row_hash = models.BigIntegerField()
    value = models.FloatField(null=True)
    numerator = models.FloatField(null=True)
    denominator = models.FloatField(null=True)
    subject_key = models.CharField(max_length=32, null=True)
    batch = models.ForeignKey(
        ImportBatch,
        on_delete=models.CASCADE,
        related_name="observations",
        db_constraint=False,
    )

    class Meta:
        verbose_name = _("observation")
        verbose_name_plural = _("observations")

    def __str__(self) -> str:
        return f"{self.measure_id}/{self.unit_id}/{self.date}"


class Series(models.Model):
    """One measure at one organisational node and grain, aggregated, with its SPC analysis.

    Written only by ``measures.aggregation`` (compute first, then replace the whole row in one
    short transaction under a per-measure lock); read by dashboards and the API, which never
    aggregate raw observations while a user waits (DESIGN.md §3).

    ``points`` is columnar (one list per field, one element per period, oldest first): it is
    built from numpy arrays without a Python object per point and rolled up again the same way.
    It holds the true sums of suppressed periods, which parents are pooled from; those periods
    must never leave the server: readers use ``measures.series`` which drops them.
    """

    # No database-level foreign keys (as for observations): checking ~13,000 of them at the
    # commit of a full run took 0.2 s; only the engine writes these rows, from ids it just
    # read, and Django's CASCADE still deletes them with their measure or node.
    measure = models.ForeignKey(
        Measure,
        on_delete=models.CASCADE,
        related_name="series",
        verbose_name=_("measure"),
        db_constraint=False,
    )
    level = models.CharField(_("level"), max_length=12, choices=SeriesLevel.choices)
    grain = models.CharField(_("grain"), max_length=8, choices=Frequency.choices)
    unit = models.ForeignKey(
        Unit,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="series",
        verbose_name=_("unit"),
        db_constraint=False,
    )
    department = models.ForeignKey(
        Department,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="series",
        verbose_name=_("department"),
        db_constraint=False,
    )
    division = models.ForeignKey(
        Division,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="series",
        verbose_name=_("division"),
        db_constraint=False,
    )
    # "unit:12", "department:3", "division:1": one unique key whatever the level.
    node_key = models.CharField(_("node"), max_length=32)
    computed_at = models.DateTimeField(
        _("computed"), help_text=_("When the observations it was computed from were read.")
    )
    observation_count = models.BigIntegerField(_("observations"), default=0)
    chart = models.CharField(_("chart"), max_length=8)
    variation_icon = models.CharField(_("variation"), max_length=24, blank=True)
    assurance_icon = models.CharField(_("assurance"), max_length=24, blank=True)
    run_chart = models.JSONField(_("run chart"), null=True, blank=True)
    # Column-wise points in the compact form of ``measures.packing`` (read :attr:`points`).
    data = models.BinaryField(_("points"), default=bytes, editable=False)
    # A fingerprint of the inputs (period sums, suppression, settings): an incremental refresh
    # leaves a series whose inputs did not change as it was.
    inputs_digest = models.CharField(max_length=32, blank=True, editable=False)

    class Meta:
        verbose_name = _("series")
        verbose_name_plural = _("series")
        constraints = [
            models.UniqueConstraint(
                fields=["measure", "node_key", "grain"], name="series_unique_measure_node_grain"
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(
                        level=SeriesLevel.UNIT,
                        unit__isnull=False,
                        department__isnull=True,
                        division__isnull=True,
                    )
                    | models.Q(
                        level=SeriesLevel.DEPARTMENT,
                        unit__isnull=True,
                        department__isnull=False,
                        division__isnull=True,
                    )
                    | models.Q(
                        level=SeriesLevel.DIVISION,
                        unit__isnull=True,
                        department__isnull=True,
                        division__isnull=False,
                    )
                ),
                name="series_level_names_its_node",
            ),
        ]
        indexes = [models.Index(fields=["level", "grain"], name="series_level_grain")]

    def __str__(self) -> str:
        return f"{self.measure_id}/{self.node_key}/{self.grain}"

    @property
    def points(self) -> dict[str, list]:
        """One list per field, one element per period (oldest first), NaN as None.

        It holds the true sums of suppressed periods: readers use ``measures.series``.
        Decoded once per loaded ``data`` (``refresh_from_db`` loads new data).
        """
        from .packing import points_as_lists
        from .spc import PointClass, Signal

        cached = self.__dict__.get("_points")
        if cached is None or cached[0] is not self.data:
            names = tuple(str(s) for s in Signal), tuple(str(c) for c in PointClass)
            cached = (self.data, points_as_lists(self.data, *names))
            self.__dict__["_points"] = cached
        return cached[1]


class PeriodSums(models.Model):
    """The unit-level sums of one measure in one period, every unit with data in it.

    Written by ``measures.aggregation`` with the series, in the same transaction. A refresh
    after an import reads these few rows for the periods the import touched instead of every
    sibling series, and pools the department and division figures again from them; it needs
    all of a period's units to redo complementary suppression there (DESIGN.md §5, §7).
    """

    measure = models.ForeignKey(
        Measure, on_delete=models.CASCADE, related_name="period_sums", db_constraint=False
    )
    grain = models.CharField(max_length=8, choices=Frequency.choices)
    period = models.DateField()
    # Packed columns unit_id, rows, n, numerator, denominator (``measures.packing``).
    data = models.BinaryField(default=bytes)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["measure", "grain", "period"], name="period_sums_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.measure_id}/{self.grain}/{self.period}"
