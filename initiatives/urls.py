"""Pages of the improvement workflow: forums, meetings, initiatives and what is done with them.

Forum and meeting pages live here, not in ``forums``: they list initiatives, which ``forums``
must not import (DESIGN.md §3).
"""

from django.urls import path  # noqa: F401

app_name = "initiatives"

urlpatterns: list = []
