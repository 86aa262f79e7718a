import time

from django.core.management.base import BaseCommand, CommandError

from measures.aggregation import series_refresh
from measures.models import Measure
from units.models import Unit


class Command(BaseCommand):
    help = (
        "Recompute series (aggregation and SPC) from the observations: every active measure, "
        "or those given; with --unit only those units' series and their parents'. "
        "Runs in this process unless --queue is given."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--measure", dest="measures", action="append", default=[], metavar="CODE"
        )
        parser.add_argument("--unit", dest="units", action="append", default=[], metavar="CODE")
        parser.add_argument(
            "--queue", action="store_true", help="Hand the work to the worker and return."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Recompute every series, also those whose inputs did not change.",
        )

    def handle(
        self, *args, measures: list[str], units: list[str], queue: bool, force: bool, **options
    ):
        measure_ids = None
        if measures:
            found = dict(Measure.objects.filter(code__in=measures).values_list("code", "id"))
            missing = sorted(set(measures) - set(found))
            if missing:
                raise CommandError(f"Unknown measure(s): {', '.join(missing)}.")
            measure_ids = sorted(found.values())
        unit_ids = None
        if units:
            # Unit codes are matched case-insensitively, as the importer does.
            every = {code.upper(): pk for code, pk in Unit.objects.values_list("code", "id")}
            found = {code.upper(): every[code.upper()] for code in units if code.upper() in every}
            missing = sorted({u.upper() for u in units} - set(found))
            if missing:
                raise CommandError(f"Unknown unit(s): {', '.join(missing)}.")
            unit_ids = sorted(found.values())
        if queue:
            from measures.tasks import series_refresh_task

            series_refresh_task.delay(measure_ids=measure_ids, unit_ids=unit_ids, force=force)
            self.stdout.write("Recomputation queued.")
            return
        started = time.perf_counter()
        result = series_refresh(measure_ids=measure_ids, unit_ids=unit_ids, force=force)
        self.stdout.write(
            f"{result.measures} measures: {result.series_written} series written, "
            f"{result.series_deleted} deleted, {result.series_unchanged} unchanged, "
            f"from {result.observations} observations in "
            f"{time.perf_counter() - started:.2f} s."
        )
