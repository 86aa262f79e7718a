from datetime import date

from django.core.management.base import BaseCommand, CommandError

from demo.division import WEEKS, DemoError, DemoSummary, demo_load


class Command(BaseCommand):
    help = (
        "Create the demo division (Psykiatri) with its people, forums, measures, three "
        "years of weekly data and its improvement work, unless it exists; then print the demo log-ins. Accounts with "
        "the demo's usernames get the demo password when the demo is created."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Delete the demo division, its measures and its data first, then load it again.",
        )
        parser.add_argument(
            "--end",
            type=date.fromisoformat,
            help="The Sunday the data ends on (default: the last complete week).",
        )
        parser.add_argument(
            "--weeks", type=int, default=WEEKS, help=f"Weeks of data (default {WEEKS})."
        )

    def handle(self, *args, reset: bool, end: date | None, weeks: int, **options):
        self.verbosity = options["verbosity"]
        try:
            summary = demo_load(end=end, reset=reset, weeks=weeks, log=self._log)
        except DemoError as exc:
            raise CommandError(str(exc)) from exc
        if summary.created:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo division loaded in {summary.seconds:.1f} s: "
                    f"{summary.departments} departments, {summary.units} units, "
                    f"{summary.forums} forums, {summary.measures} measures, "
                    f"{summary.observations:,} observations up to {summary.end}, "
                    f"{summary.initiatives} initiatives, {summary.meetings} meetings "
                    f"(import batches {', '.join(f'#{pk}' for pk in summary.batches)})."
                )
            )
        else:
            self.stdout.write(
                f"The demo division exists (data up to {summary.end or 'unknown'}); "
                "nothing to do. Use --reset to load it again."
            )
        self._logins(summary)

    def _log(self, message: str) -> None:
        if self.verbosity >= 1:
            self.stdout.write(message)

    def _logins(self, summary: DemoSummary) -> None:
        rows = [
            ("username", "role", "where"),
            *((x.username, x.role, x.where) for x in summary.logins),
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        self.stdout.write(f"\nDemo log-ins (password: {summary.password}):")
        for index, (username, role, where) in enumerate(rows):
            line = f"  {username:<{widths[0]}}  {role:<{widths[1]}}  {where}"
            self.stdout.write(self.style.MIGRATE_HEADING(line) if index == 0 else line)
