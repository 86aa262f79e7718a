from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UnitsConfig(AppConfig):
    name = "units"
    verbose_name = _("Organisation")

    def ready(self):
        from . import (
            schema,  # noqa: F401  (registers the OpenAPI extension)
            signals,  # noqa: F401  (audit receivers for log-ins and admin changes)
        )
