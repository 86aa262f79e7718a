from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from units.services import api_token_create


class Command(BaseCommand):
    help = "Create an API token for USERNAME and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="scheduled extract", help="What uses the token.")

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user called {username!r}.")
        if not user.is_active:
            raise CommandError(f"User {username!r} is not active.")
        token, key = api_token_create(user=user, name=name)
        self.stderr.write(
            f"Token {token.key_prefix}… for {username}; store it now, it is not shown again:"
        )
        self.stdout.write(key)
