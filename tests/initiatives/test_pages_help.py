"""The help page: its diagram and its table are the workflow table, generated, complete."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from initiatives import workflow
from initiatives.diagram import layout, state_levels, workflow_svg
from initiatives.enums import State

pytestmark = pytest.mark.django_db


@pytest.fixture
def page(client, org):
    client.force_login(org.people["clinician"])
    response = client.get(reverse("initiatives:help-workflow"))
    assert response.status_code == 200
    return response.content.decode()


def test_the_diagram_has_every_state_and_every_step_of_the_table(page):
    svg = page[page.index("<svg") : page.index("</svg>")]
    for state in State:
        assert f'data-state="{state}"' in svg, state
        for line in str(state.label).split():
            assert line in svg  # the label, wrapped over lines
    drawn = set(re.findall(r'data-step="([^"]+)" data-from="([^"]+)" data-to="([^"]+)"', svg))
    expected = {(t.name, s, t.target) for t in workflow.TRANSITIONS for s in t.sources}
    assert drawn == expected


def test_the_table_has_every_step_with_its_states_and_actors(page):
    table = page[page.index('<table class="table workflow-table"') :]
    rows = re.findall(r'<tr id="step-([^"]+)"', table)
    assert rows == [t.name for t in workflow.TRANSITIONS]
    for row in workflow.describe():
        chunk = table[table.index(f'id="step-{row["name"]}"') :]
        chunk = chunk[: chunk.index("</tr>")]
        assert row["label"] in chunk
        assert str(State(row["target"]).label) in chunk
        for source in row["sources"]:
            assert str(State(source).label) in chunk
        for actor in row["actors"]:
            assert actor.replace("'", "&#x27;") in chunk


def test_no_inline_style_or_script(page):
    assert "style=" not in page and "<style" not in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)


def test_states_sit_in_the_row_of_their_level():
    levels = state_levels()
    assert levels[State.LOCAL_TESTING] == {"unit_forum"}
    assert levels[State.VOTING] == {"division_board"}
    assert levels[State.PRIORITISED] == {"department_group"}
    assert len(levels[State.LOGGED]) == 3  # logged at every level
    centres = layout()
    assert len(set(centres.values())) == len(State)  # no two boxes on top of each other


def test_the_diagram_follows_the_table(monkeypatch):
    """Change the table and the drawing changes with it: nothing is drawn from elsewhere."""
    first = workflow.TRANSITIONS[0]
    monkeypatch.setattr(workflow, "TRANSITIONS", workflow.TRANSITIONS[1:])
    svg = workflow_svg()
    assert f'data-step="{first.name}"' not in svg
