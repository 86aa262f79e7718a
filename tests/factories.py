"""factory_boy factories for the organisation, forums and measures."""

import factory
from django.contrib.auth import get_user_model

from forums.enums import ForumKind, MembershipRole
from forums.models import Forum, Membership
from measures.enums import Direction, Face, Frequency, MeasureKind, Scope
from measures.models import Measure
from units.enums import UnitKind
from units.models import Affiliation, Department, Division, Unit


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    # Hashed before the insert (a post-generation set_password would not be saved here).
    password = factory.django.Password("pw")


class DivisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Division
        django_get_or_create = ("code",)

    code = "psy"
    name = "Psykiatri"


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department

    division = factory.SubFactory(DivisionFactory)
    code = factory.Sequence(lambda n: f"dept-{n}")
    name = factory.Sequence(lambda n: f"Department {n}")


class UnitFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Unit

    department = factory.SubFactory(DepartmentFactory)
    code = factory.Sequence(lambda n: f"U{n:03d}")
    name = factory.Sequence(lambda n: f"Unit {n}")
    kind = UnitKind.IN_PATIENT


class AffiliationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Affiliation

    user = factory.SubFactory(UserFactory)
    unit = factory.SubFactory(UnitFactory)


class ForumFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Forum

    kind = ForumKind.UNIT_FORUM
    name = factory.Sequence(lambda n: f"Forum {n}")
    division = factory.SubFactory(DivisionFactory)


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    forum = factory.SubFactory(ForumFactory)
    user = factory.SubFactory(UserFactory)
    role = MembershipRole.MEMBER


class MeasureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Measure

    code = factory.Sequence(lambda n: f"measure-{n}")
    name = factory.Sequence(lambda n: f"Measure {n}")
    kind = MeasureKind.MEAN
    direction = Direction.DOWN
    frequency = Frequency.WEEK
    scope = Scope.DIVISION
    face = Face.ACCOUNTABILITY
