"""The admin shows initiatives with their history, and cannot move them by hand."""

from datetime import date

from django.urls import reverse

from initiatives.services import initiative_transition, pdsa_cycle_create

from .conftest import log


def test_admin_pages(client, wf):
    idea = log(wf, "unit", title="Morning walks")
    initiative_transition(initiative=idea, user=wf.people["chair"], transition="start_testing")
    cycle = pdsa_cycle_create(
        user=wf.people["chair"],
        initiative=idea,
        unit=wf.a1,
        plan="Walk",
        start_date=date(2024, 1, 1),
    )
    client.force_login(wf.people["admin"])
    for url in (
        reverse("admin:initiatives_initiative_changelist"),
        reverse("admin:initiatives_initiative_change", args=[idea.pk]),
        reverse("admin:initiatives_pdsacycle_changelist"),
        reverse("admin:initiatives_pdsacycle_change", args=[cycle.pk]),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
    page = client.get(reverse("admin:initiatives_initiative_change", args=[idea.pk])).content
    assert b"start_testing" in page  # the history inline
    assert b'name="state"' not in page  # state moves through the workflow only
