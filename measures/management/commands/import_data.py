from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from measures.enums import ImportSource, ImportStatus
from measures.services import import_batch_create, import_batch_process


class Command(BaseCommand):
    help = (
        "Import a CSV file as USERNAME (whose rights decide which units it may hold). "
        "Runs in this process unless --queue is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--as", dest="username", required=True, help="Who is importing.")
        parser.add_argument(
            "--queue", action="store_true", help="Hand the import to the worker and return."
        )

    def handle(self, *args, path: Path, username: str, queue: bool, **options):
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user called {username!r}.")
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        with path.open("rb") as fh:
            try:
                batch = import_batch_create(
                    user=user,
                    upload=File(fh, name=path.name),
                    source=ImportSource.COMMAND,
                    enqueue=queue,
                )
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from exc
        if queue:
            self.stdout.write(f"Batch #{batch.pk} queued.")
            return
        batch = import_batch_process(batch_id=batch.pk) or batch
        batch.refresh_from_db()
        self.stdout.write(f"Batch #{batch.pk}: {batch.get_status_display()}. {batch.message}")
        for error in batch.rendered_errors:
            self.stdout.write(
                f"  row {error['row']}, {error['column']}: {error['value']!r}: {error['message']}"
            )
        if batch.status != ImportStatus.SUCCEEDED:
            raise CommandError(f"Batch #{batch.pk} was not imported.")
