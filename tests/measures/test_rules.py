"""Who may do what with measures and data (measures/rules.py), the no as well as the yes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Permission

from forums.enums import ForumKind, MembershipRole
from measures.enums import ImportStatus
from measures.models import ImportBatch
from measures.rules import (
    can_configure_measures,
    can_revert_batch,
    can_upload,
    can_upload_for,
    uploadable_units,
    visible_batches,
)
from tests.factories import ForumFactory, MembershipFactory, UnitFactory, UserFactory

pytestmark = pytest.mark.django_db

ALL = ["AFF-01", "AFF-02", "PSY-01"]


def codes(units) -> list[str]:
    return sorted(units.values_list("code", flat=True))


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("clinician", []),
        ("chair", ["AFF-01"]),
        ("dept_chair", ["AFF-01", "AFF-02"]),
        ("support", ALL),
        ("admin", ALL),
        ("board", []),
        ("outsider", []),
    ],
)
def test_uploadable_units_per_role(org, username, expected):
    user = org.people[username]

    assert codes(uploadable_units(user)) == expected
    assert can_upload(user) is bool(expected)
    for unit in (org.a1, org.a2, org.b1):
        assert can_upload_for(user, unit) is (unit.code in expected)


def test_anonymous_may_upload_for_nothing(org):
    assert codes(uploadable_units(AnonymousUser())) == []
    assert can_upload(AnonymousUser()) is False


@pytest.mark.parametrize("username", ["chair", "dept_chair", "support", "admin"])
def test_an_inactive_user_may_upload_for_nothing(org, username):
    user = org.people[username]
    user.is_active = False
    user.save()

    assert codes(uploadable_units(user)) == []
    assert can_upload(user) is False


def test_a_forum_member_or_secretary_who_does_not_chair_may_not_upload(org):
    secretary = UserFactory(username="secretary")
    MembershipFactory(forum=org.forums["unit"], user=secretary, role=MembershipRole.SECRETARY)
    dept_member = UserFactory(username="dept_member")
    MembershipFactory(forum=org.forums["dept"], user=dept_member, role=MembershipRole.MEMBER)

    assert codes(uploadable_units(secretary)) == []
    assert codes(uploadable_units(dept_member)) == []


def test_the_board_chair_may_not_upload_by_that_alone(org):
    board_chair = UserFactory(username="board_chair")
    MembershipFactory(forum=org.forums["board"], user=board_chair, role=MembershipRole.CHAIR)

    assert codes(uploadable_units(board_chair)) == []


def test_a_chair_of_a_forum_serving_several_units_uploads_for_each(org):
    forum = ForumFactory(kind=ForumKind.UNIT_FORUM, name="Joint forum", division=org.division)
    forum.units.add(org.a2, org.b1)
    chair = UserFactory(username="joint_chair")
    MembershipFactory(forum=forum, user=chair, role=MembershipRole.CHAIR)

    assert codes(uploadable_units(chair)) == ["AFF-02", "PSY-01"]


def test_a_person_chairing_two_forums_gets_both_without_duplicates(org):
    MembershipFactory(forum=org.forums["dept"], user=org.people["chair"], role=MembershipRole.CHAIR)

    assert (
        list(uploadable_units(org.people["chair"]).values_list("code", flat=True)).count("AFF-01")
        == 1
    )
    assert codes(uploadable_units(org.people["chair"])) == ["AFF-01", "AFF-02"]


def test_a_new_unit_in_the_department_is_the_department_chairs_too(org):
    UnitFactory(department=org.dept_a, code="AFF-03")
    UnitFactory(department=org.dept_b, code="PSY-02")

    assert codes(uploadable_units(org.people["dept_chair"])) == ["AFF-01", "AFF-02", "AFF-03"]
    assert "PSY-02" in codes(uploadable_units(org.people["support"]))


def test_affiliation_alone_gives_no_upload_right(org):
    # The clinician works in AFF-01 (and sits on its forum) but chairs nothing.
    assert org.people["clinician"].units.filter(pk=org.a1.pk).exists()
    assert can_upload_for(org.people["clinician"], org.a1) is False


# --- configuring measures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "allowed"),
    [
        ("admin", True),
        ("support", False),
        ("chair", False),
        ("dept_chair", False),
        ("clinician", False),
        ("board", False),
        ("outsider", False),
    ],
)
def test_who_configures_measures(org, username, allowed):
    assert can_configure_measures(org.people[username]) is allowed


def test_the_change_measure_permission_grants_configuration(org):
    user = org.people["support"]
    user.user_permissions.add(Permission.objects.get(codename="change_measure"))
    user = type(user).objects.get(pk=user.pk)  # a fresh permission cache

    assert can_configure_measures(user) is True


def test_an_inactive_admin_configures_nothing(org):
    admin = org.people["admin"]
    admin.is_active = False
    admin.save()

    assert can_configure_measures(admin) is False
    assert can_configure_measures(AnonymousUser()) is False


# --- seeing and reverting batches -----------------------------------------------------------------


@pytest.fixture
def batches(org, run_import):
    return {
        "chair": run_import(org.people["chair"], "patient_level.csv"),
        "dept_chair": run_import(org.people["dept_chair"], "out_of_range.csv"),
    }


@pytest.mark.parametrize(
    ("username", "visible"),
    [
        ("chair", {"chair"}),
        ("dept_chair", {"dept_chair"}),
        ("support", {"chair", "dept_chair"}),
        ("admin", {"chair", "dept_chair"}),
        ("clinician", set()),
        ("board", set()),
        ("outsider", set()),
    ],
)
def test_visible_batches(org, batches, username, visible):
    expected = {batches[who].pk for who in visible}

    assert set(visible_batches(org.people[username]).values_list("pk", flat=True)) == expected


def test_no_batches_for_anonymous_or_inactive(org, batches):
    chair = org.people["chair"]
    chair.is_active = False
    chair.save()

    assert not visible_batches(AnonymousUser()).exists()
    assert not visible_batches(chair).exists()


@pytest.mark.parametrize(
    ("username", "allowed"),
    [
        ("support", True),
        ("admin", True),
        ("chair", False),
        ("dept_chair", False),
        ("clinician", False),
        ("board", False),
    ],
)
def test_who_reverts_an_imported_batch(org, batches, username, allowed):
    assert can_revert_batch(org.people[username], batches["chair"]) is allowed


@pytest.mark.parametrize(
    "status",
    [
        ImportStatus.QUEUED,
        ImportStatus.RUNNING,
        ImportStatus.REJECTED,
        ImportStatus.FAILED,
        ImportStatus.REVERTED,
    ],
)
def test_only_imported_batches_are_reverted(org, batches, status):
    batch = batches["chair"]
    ImportBatch.objects.filter(pk=batch.pk).update(status=status)
    batch.refresh_from_db()

    assert can_revert_batch(org.people["admin"], batch) is False


def test_anonymous_reverts_nothing(org, batches):
    assert can_revert_batch(AnonymousUser(), batches["chair"]) is False


@pytest.mark.parametrize("username", ["clinician", "chair", "dept_chair", "support", "board"])
def test_whether_one_may_upload_costs_at_most_one_query_beyond_the_seats(
    org, username, django_assert_num_queries
):
    """The navigation asks it on every page, and reads the person's seats anyway: someone
    who holds no seat one imports from costs nothing more, the others one query."""
    from forums.rules import seats

    user = org.people[username]
    seats(user)
    with django_assert_num_queries(1 if username in ("chair", "dept_chair", "support") else 0):
        answer = can_upload(user)
    assert answer is uploadable_units(user).exists()
    assert answer is (username in ("chair", "dept_chair", "support"))


def test_a_chair_of_a_unit_forum_or_group_without_units_may_not_upload(org):
    from forums.enums import ForumKind, MembershipRole
    from tests.factories import ForumFactory, MembershipFactory, UserFactory

    lonely = UserFactory(username="lonely")
    forum = ForumFactory(kind=ForumKind.UNIT_FORUM, name="Empty forum", division=org.division)
    MembershipFactory(forum=forum, user=lonely, role=MembershipRole.CHAIR)
    assert can_upload(lonely) is False
    MembershipFactory(forum=org.forums["unit"], user=lonely, role=MembershipRole.MEMBER)
    assert can_upload(lonely) is False
    MembershipFactory(forum=org.forums["support"], user=lonely, role=MembershipRole.MEMBER)
    assert can_upload(lonely) is True
