"""Shared fixtures: an organisation with one person in each role."""

import pytest

from forums.enums import ForumKind, MembershipRole
from measures.enums import Direction, Face, Frequency, MeasureKind, Scope

from .factories import (
    AffiliationFactory,
    DepartmentFactory,
    ForumFactory,
    MeasureFactory,
    MembershipFactory,
    UnitFactory,
    UserFactory,
)


@pytest.fixture(autouse=True, scope="session")
def _broker_in_memory():
    """Tasks a unit test sends go nowhere: never into `make run`'s broker in var/, nor to a
    worker of the end-to-end tests (which publish to theirs only while a test asks for it)."""
    from lhs.celery import app

    def use(url: str) -> None:
        app.conf.broker_url = url
        # The app keeps its connection and producer pools once it has published.
        app._pool = None
        if "amqp" in app.__dict__:
            app.amqp._producer_pool = None

    saved = app.conf.broker_url
    use("memory://")
    yield
    use(saved)


@pytest.fixture(autouse=True)
def _media_and_cache(settings, tmp_path):
    """Uploaded files go to a per-test folder; the cache is per process memory in unit tests."""
    settings.MEDIA_ROOT = tmp_path / "media"
    # A fast hasher: the org fixture's users cost seconds per test with the real one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.SECURE_SSL_REDIRECT = False
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # Local-memory caches of one name share their store across instances: start each test
    # empty (upload throttling and import progress live there).
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def celery_eager(settings):
    """Run tasks in-process when enqueued (unit tests only; e2e tests use a real worker)."""
    from lhs.celery import app

    # Read first: the app loads its configuration from Django's settings on first use, and
    # would otherwise take the override below as its own lasting value.
    previous = app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def org(db):
    """Two departments, three units, and a person for every role.

    - clinician: affiliated to unit a1 only
    - chair: chairs the unit forum of a1 (may upload for a1, not a2 or b1)
    - dept_chair: chairs department A's coordinating group (may upload for a1 and a2)
    - support: sits in the support unit (may upload for every unit)
    - board: sits on the division board (no upload rights by that alone)
    - admin: superuser
    - outsider: a logged-in user with no role at all
    """
    dept_a = DepartmentFactory(code="aff", name="Affektiva sjukdomar")
    dept_b = DepartmentFactory(code="psy", name="Psykos", division=dept_a.division)
    a1 = UnitFactory(department=dept_a, code="AFF-01", name="Avdelning 1 – Ångest")
    a2 = UnitFactory(department=dept_a, code="AFF-02", name="Öppenvård Ätstörning")
    b1 = UnitFactory(department=dept_b, code="PSY-01", name="Psykosavdelning")
    division = dept_a.division

    people = {
        name: UserFactory(username=name)
        for name in ("clinician", "chair", "dept_chair", "support", "board", "outsider")
    }
    people["admin"] = UserFactory(username="admin", is_superuser=True, is_staff=True)
    AffiliationFactory(user=people["clinician"], unit=a1)
    AffiliationFactory(user=people["chair"], unit=a1)

    unit_forum = ForumFactory(kind=ForumKind.UNIT_FORUM, name="Forum AFF-01", division=division)
    unit_forum.units.add(a1)
    MembershipFactory(forum=unit_forum, user=people["chair"], role=MembershipRole.CHAIR)
    MembershipFactory(forum=unit_forum, user=people["clinician"], role=MembershipRole.MEMBER)
    dept_group = ForumFactory(
        kind=ForumKind.DEPARTMENT_GROUP, name="Group A", division=division, department=dept_a
    )
    MembershipFactory(forum=dept_group, user=people["dept_chair"], role=MembershipRole.CHAIR)
    support = ForumFactory(kind=ForumKind.SUPPORT_UNIT, name="Support", division=division)
    MembershipFactory(forum=support, user=people["support"])
    board = ForumFactory(kind=ForumKind.DIVISION_BOARD, name="Board", division=division)
    MembershipFactory(forum=board, user=people["board"])

    measures = {
        "honos": MeasureFactory(
            code="honos-total",
            name="HoNOS total",
            kind=MeasureKind.MEAN,
            direction=Direction.DOWN,
            frequency=Frequency.WEEK,
            value_min=0,
            value_max=48,
        ),
        "careplan": MeasureFactory(
            code="care-plan",
            name="Share with a care plan",
            kind=MeasureKind.PROPORTION,
            direction=Direction.UP,
            frequency=Frequency.MONTH,
            face=Face.IMPROVEMENT,
        ),
        "coercion": MeasureFactory(
            code="coercion",
            name="Coercive measures per 1,000 bed days",
            kind=MeasureKind.RATE,
            direction=Direction.DOWN,
            frequency=Frequency.MONTH,
            rate_per=1000,
        ),
        "incidents": MeasureFactory(
            code="incidents",
            name="Incidents",
            kind=MeasureKind.COUNT,
            direction=Direction.DOWN,
            frequency=Frequency.WEEK,
        ),
        "local": MeasureFactory(
            code="local-walks",
            name="Daily walks",
            kind=MeasureKind.COUNT,
            direction=Direction.UP,
            frequency=Frequency.WEEK,
            scope=Scope.UNIT,
            unit=a1,
        ),
    }

    class Org:
        pass

    o = Org()
    o.division, o.dept_a, o.dept_b = division, dept_a, dept_b
    o.a1, o.a2, o.b1 = a1, a2, b1
    o.forums = {"unit": unit_forum, "dept": dept_group, "support": support, "board": board}
    o.people = people
    o.measures = measures
    return o
