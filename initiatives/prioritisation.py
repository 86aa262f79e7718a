"""Prioritisation: criteria, members' scores, the forum's ranking, impact/effort, dialogue.

Department coordinating groups and division boards score initiatives on stated criteria
(impact, evidence, effort, reach, alignment by default; each forum's chair renames, weights,
orders, adds and switches them off). Every member scores on their own; the forum sees the
aggregate. Which initiatives a forum scores, and who may, is ``rules.py`` (its section
"Prioritisation"): those that sit in it or that it has had, while still on the road to a
decision.

How the ranking is computed (:func:`ranking`):

- a member's score of an initiative is the weighted mean of the values they gave on the
  forum's *active* criteria, a criterion where lower is better (effort) counted as 6 − value;
  criteria they left out do not count, and a member whose scored criteria all weigh 0 has no
  score;
- the initiative's mean and median are over the members who have a score; ``scorers`` is
  how many;
- the ranked list is by the mean, highest first. Ties on the mean are broken by :data:`TIE_RULE`
  — the higher median, then more members scoring, then the earlier logged — and every row
  of a tie says which of these ordered it. Initiatives nobody has scored follow, unranked,
  earliest logged first.

Arithmetic is exact (fractions): two means are tied only when they are equal, never because
of floating-point noise.

Writes refuse with a ``ValidationError`` with a code (``initiatives/services.py``):
``not_permitted`` → 403, ``not_found`` (no such criterion, or not the forum's) → 404,
``conflict`` → 409 — the request is well formed but what it asks clashes with how things
stand: a name the forum already has, the last criterion that is on or the last weight above
0, a score on a criterion switched off, an initiative the forum does not score now —, and
``bad_value`` and the like (wrong input) → 400.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from itertools import pairwise
from statistics import median

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import FilteredRelation, Max, Q, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from forums.enums import ForumKind
from forums.models import Forum
from units.models import Department

from .enums import State
from .models import Criterion, Initiative, Score
from .rules import (
    can_configure_criteria,
    can_score,
    forum_role,
    prioritises,
    scorable_initiatives,
)

#: The criteria a forum starts with: (name, description, higher is better). Stored in the
#: language of the person who first opens the forum's prioritisation; the chair renames them.
DEFAULT_CRITERIA = (
    (
        gettext_lazy("Impact"),
        gettext_lazy("How much better care gets for patients if it works."),
        True,
    ),
    (
        gettext_lazy("Evidence"),
        gettext_lazy("How strong the evidence is that it works (studies, tests, experience)."),
        True,
    ),
    (
        gettext_lazy("Effort"),
        gettext_lazy("How much work, time and money it takes: more effort counts against it."),
        False,
    ),
    (
        gettext_lazy("Reach"),
        gettext_lazy("How many patients, units or staff it reaches."),
        True,
    ),
    (
        gettext_lazy("Alignment"),
        gettext_lazy("How well it fits the goals of the department and the division."),
        True,
    ),
)
#: The scale every criterion is scored on.
LOWEST, HIGHEST = 1, 5
#: The largest weight the database keeps (five digits, two of them decimals).
MAX_WEIGHT = Decimal("999.99")
#: How ties on the mean are broken, in order (the page states it).
TIE_RULE = gettext_lazy(
    "Ties on the mean score are broken by the higher median, then by more members scoring, "
    "then by the earlier logged."
)
#: What ordered two initiatives tied on the mean.
TIE_BREAKS = {
    "median": gettext_lazy("ordered by the higher median"),
    "scorers": gettext_lazy("ordered by more members scoring"),
    "logged": gettext_lazy("ordered by the earlier logged"),
}
#: The dialogue calls it a disagreement when the two forums place a shared initiative at
#: least this many places apart among the initiatives they both have scored …
DISAGREEMENT_PLACES = 2
#: … or when their mean scores of it differ by at least this much (on the 1–5 scale).
DISAGREEMENT_POINTS = Fraction(1)


def _refuse(message: str, code: str, field: str | None = None) -> ValidationError:
    error = ValidationError(message, code=code)
    return ValidationError({field: error}) if field else error


# ==============================================================================================
# Criteria
# ==============================================================================================


def _check_prioritises(forum: Forum) -> None:
    if not prioritises(forum):
        raise _refuse(
            _("Only department coordinating groups and the division board prioritise."),
            "not_prioritising",
        )


def criteria_ensure_defaults(forum: Forum) -> list[Criterion]:
    """The forum's criteria in order; on first use the five stated ones (weight 1 each,
    effort counted against). A forum that has any criteria, on or off, keeps its own. Two
    first uses at once make one set (the names are unique per forum)."""
    _check_prioritises(forum)
    criteria = list(Criterion.objects.filter(forum=forum).order_by("position", "pk"))
    if criteria:
        return criteria
    Criterion.objects.bulk_create(
        [
            Criterion(
                forum=forum,
                name=str(name),
                description=str(description),
                weight=Decimal(1),
                higher_is_better=higher,
                position=position,
            )
            for position, (name, description, higher) in enumerate(DEFAULT_CRITERIA)
        ],
        ignore_conflicts=True,
    )
    return list(Criterion.objects.filter(forum=forum).order_by("position", "pk"))


def _check_configure(user: AbstractBaseUser, forum: Forum) -> None:
    _check_prioritises(forum)
    if not can_configure_criteria(user, forum):
        raise _refuse(
            _("Only the chair of %(forum)s sets its criteria.") % {"forum": forum},
            "not_permitted",
        )


def _clean_name(name: str, forum: Forum, *, exclude: int | None = None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise _refuse(_("Give the criterion a name."), "name_required", "name")
    limit = Criterion._meta.get_field("name").max_length
    if len(name) > limit:
        raise _refuse(
            _("A name may be at most %(n)s characters.") % {"n": limit}, "name_too_long", "name"
        )
    same = Criterion.objects.filter(forum=forum, name__iexact=name).exclude(pk=exclude)
    clash = same.first()
    if clash is not None:
        if clash.active:
            message = _("%(forum)s already has a criterion called “%(name)s”.")
        else:
            message = _(
                "%(forum)s already has a criterion called “%(name)s”, switched off: "
                "switch it on again instead."
            )
        raise _refuse(message % {"forum": forum, "name": clash.name}, "conflict", "name")
    return name


def _clean_description(description: str) -> str:
    description = (description or "").strip()
    limit = Criterion._meta.get_field("description").max_length
    if len(description) > limit:
        raise _refuse(
            _("A description may be at most %(n)s characters.") % {"n": limit},
            "description_too_long",
            "description",
        )
    return description


def _clean_weight(weight: object) -> Decimal:
    try:
        value = Decimal(str(weight).strip().replace(",", "."))
    except (InvalidOperation, ValueError):
        value = None
    if value is None or not value.is_finite():
        raise _refuse(_("A weight is a number, such as 1 or 1.5."), "bad_weight", "weight")
    if value < 0:
        raise _refuse(_("A weight may not be negative."), "bad_weight", "weight")
    if value > MAX_WEIGHT:
        raise _refuse(
            _("A weight may be at most %(max)s.") % {"max": MAX_WEIGHT}, "bad_weight", "weight"
        )
    if value != value.quantize(Decimal("0.01")):
        raise _refuse(_("A weight has at most two decimals."), "bad_weight", "weight")
    return value.quantize(Decimal("0.01"))


def _locked(forum: Forum) -> list[Criterion]:
    """The forum's criteria, locked for this transaction (two chairs take turns)."""
    return list(
        Criterion.objects.select_for_update().filter(forum=forum).order_by("position", "pk")
    )


def _check_some_weight(criteria: Sequence[Criterion]) -> None:
    """At least one active criterion weighs more than 0, or nobody could have a score."""
    if not any(c.active and c.weight > 0 for c in criteria):
        raise _refuse(
            _("At least one criterion that is on must weigh more than 0."), "conflict", "weight"
        )


def _save_criterion(criterion: Criterion, fields: list[str] | None = None) -> None:
    try:
        with transaction.atomic():
            criterion.save(update_fields=fields)
    except IntegrityError as exc:
        # Another chair gave the same name meanwhile (the unique constraint caught it).
        raise _refuse(
            _("%(forum)s already has a criterion called “%(name)s”.")
            % {"forum": criterion.forum, "name": criterion.name},
            "conflict",
            "name",
        ) from exc


@transaction.atomic
def criterion_create(
    *,
    user: AbstractBaseUser,
    forum: Forum,
    name: str,
    description: str = "",
    weight: object = 1,
    higher_is_better: bool = True,
) -> Criterion:
    """Add a criterion to ``forum`` (its chair), last in the order. Names are unique in the
    forum (whatever the case); the weight is 0 or more."""
    _check_configure(user, forum)
    criteria_ensure_defaults(forum)
    _locked(forum)
    criterion = Criterion(
        forum=forum,
        name=_clean_name(name, forum),
        description=_clean_description(description),
        weight=_clean_weight(weight),
        higher_is_better=bool(higher_is_better),
        position=(
            Criterion.objects.filter(forum=forum).aggregate(last=Max("position"))["last"] or 0
        )
        + 1,
    )
    _save_criterion(criterion)
    return criterion


@transaction.atomic
def criterion_update(
    *,
    user: AbstractBaseUser,
    criterion: Criterion,
    name: str | None = None,
    description: str | None = None,
    weight: object = None,
    higher_is_better: bool | None = None,
) -> Criterion:
    """Rename, describe, reweigh a criterion, or turn its direction (its chair). ``None``
    keeps what it has. Scores already given keep their values."""
    forum = criterion.forum
    _check_configure(user, forum)
    criteria = _locked(forum)
    current = next((c for c in criteria if c.pk == criterion.pk), None)
    if current is None:
        raise _refuse(_("No such criterion."), "not_found")
    if name is not None:
        current.name = _clean_name(name, forum, exclude=current.pk)
    if description is not None:
        current.description = _clean_description(description)
    if weight is not None:
        current.weight = _clean_weight(weight)
    if higher_is_better is not None:
        current.higher_is_better = bool(higher_is_better)
    _check_some_weight(criteria)
    _save_criterion(current, ["name", "description", "weight", "higher_is_better"])
    return current


@transaction.atomic
def criterion_deactivate(*, user: AbstractBaseUser, criterion: Criterion) -> Criterion:
    """Switch a criterion off (its chair): the scores given on it are kept but leave the
    ranking until it is switched on again. The last criterion that is on stays on."""
    forum = criterion.forum
    _check_configure(user, forum)
    criteria = _locked(forum)
    current = next((c for c in criteria if c.pk == criterion.pk), None)
    if current is None:
        raise _refuse(_("No such criterion."), "not_found")
    if current.active:
        current.active = False
        if not any(c.active for c in criteria):
            raise _refuse(
                _("A forum scores on at least one criterion: this is the last one that is on."),
                "conflict",
            )
        _check_some_weight(criteria)
        current.save(update_fields=["active"])
    return current


@transaction.atomic
def criterion_reactivate(*, user: AbstractBaseUser, criterion: Criterion) -> Criterion:
    """Switch a criterion on again (its chair): the scores kept on it count again."""
    forum = criterion.forum
    _check_configure(user, forum)
    criteria = _locked(forum)
    current = next((c for c in criteria if c.pk == criterion.pk), None)
    if current is None:
        raise _refuse(_("No such criterion."), "not_found")
    if not current.active:
        current.active = True
        current.save(update_fields=["active"])
    return current


@transaction.atomic
def criterion_move(*, user: AbstractBaseUser, criterion: Criterion, up: bool) -> Criterion:
    """Move a criterion one place up or down in the forum's order (its chair). At either
    end it stays where it is."""
    forum = criterion.forum
    _check_configure(user, forum)
    criteria = _locked(forum)
    index = next((i for i, c in enumerate(criteria) if c.pk == criterion.pk), None)
    if index is None:
        raise _refuse(_("No such criterion."), "not_found")
    other = index - 1 if up else index + 1
    if 0 <= other < len(criteria):
        criteria[index], criteria[other] = criteria[other], criteria[index]
    changed = []
    for position, c in enumerate(criteria):
        if c.position != position:
            c.position = position
            changed.append(c)
    Criterion.objects.bulk_update(changed, ["position"])
    return next(c for c in criteria if c.pk == criterion.pk)


# ==============================================================================================
# Scores
# ==============================================================================================


def _field(criterion_id: int) -> str:
    """The key of a criterion's error (and of its field in the scoring form)."""
    return f"criterion_{criterion_id}"


def _clean_value(value: object) -> int | None:
    """A score 1–5, ``None`` for "not scored"; raises ``ValueError`` for anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)  # JSON's 4.0 is the integer 4
    elif isinstance(value, str) and value.strip().isdecimal():
        number = int(value.strip())
    else:
        raise ValueError
    if not LOWEST <= number <= HIGHEST:
        raise ValueError
    return number


def score_set(
    *,
    user: AbstractBaseUser,
    initiative: Initiative,
    scores: Mapping[int | str, object],
    forum: Forum | None = None,
) -> dict[int, int]:
    """Record ``user``'s scores of ``initiative``: criterion id → a value 1–5, or ``None`` to
    take a score back. The criteria are one forum's (``forum``, if given, must be theirs);
    ``user`` sits in it and it scores the initiative now (``rules.can_score``).

    Every value is checked before anything is written: a wrong one is refused with the
    criterion named (``criterion_<id>``: ``bad_value``) and nothing changes. The write is
    an upsert on the (initiative, criterion, member) unique constraint, so a form sent
    twice, or from two tabs at once, leaves one row per criterion. Returns the member's
    scores of the initiative in that forum afterwards.
    """
    if not scores:
        raise _refuse(_("Give at least one score."), "no_scores")
    ids: dict[int, object] = {}
    for key, value in scores.items():
        try:
            ids[int(key)] = value
        except (TypeError, ValueError):
            raise _refuse(_("“%(key)s” is not a criterion.") % {"key": key}, "not_found") from None
    found = Criterion.objects.select_related("forum").filter(
        pk__in=[pk for pk in ids if 0 < pk < 2**31]
    )
    if forum is not None:
        found = found.filter(forum=forum)
    criteria = {c.pk: c for c in found}
    unknown = sorted(set(ids) - set(criteria))
    if unknown:
        if forum is not None:
            message = _("%(forum)s has no criterion %(ids)s.")
        else:
            message = _("No such criterion: %(ids)s.")
        raise _refuse(message % {"forum": forum, "ids": ", ".join(map(str, unknown))}, "not_found")
    if len({c.forum_id for c in criteria.values()}) > 1:
        raise _refuse(_("Score one forum's criteria at a time."), "mixed_forums")
    scoring_forum = next(iter(criteria.values())).forum
    if not can_score(user, initiative, scoring_forum):
        if forum_role(user, scoring_forum) is None or not user.is_active:
            raise _refuse(
                _("Only the members of %(forum)s score initiatives there.")
                % {"forum": scoring_forum},
                "not_permitted",
            )
        raise _refuse(
            _(
                "%(forum)s does not score this initiative now: it has not been there, or it "
                "is “%(state)s”."
            )
            % {"forum": scoring_forum, "state": State(initiative.state).label},
            "conflict",
        )
    errors: dict[str, list[ValidationError]] = {}
    values: dict[int, int | None] = {}
    for criterion_id, raw in ids.items():
        criterion = criteria[criterion_id]
        try:
            values[criterion_id] = _clean_value(raw)
        except ValueError:
            errors[_field(criterion_id)] = [
                ValidationError(
                    _("%(criterion)s: give a whole number from %(low)s to %(high)s.")
                    % {"criterion": criterion.name, "low": LOWEST, "high": HIGHEST},
                    code="bad_value",
                )
            ]
            continue
        if not criterion.active and values[criterion_id] is not None:
            errors[_field(criterion_id)] = [
                ValidationError(
                    _("%(criterion)s is switched off: it is not scored now.")
                    % {"criterion": criterion.name},
                    code="conflict",
                )
            ]
    if errors:
        raise ValidationError(errors)
    given = [
        Score(initiative=initiative, criterion_id=cid, member=user, value=value)
        for cid, value in values.items()
        if value is not None
    ]
    taken_back = [cid for cid, value in values.items() if value is None]
    with transaction.atomic():
        if given:
            Score.objects.bulk_create(
                given,
                update_conflicts=True,
                unique_fields=["initiative", "criterion", "member"],
                update_fields=["value", "updated_at"],
            )
        if taken_back:
            Score.objects.filter(
                initiative=initiative, member=user, criterion_id__in=taken_back
            ).delete()
    return my_scores(user, initiative, scoring_forum)


def my_scores(user: AbstractBaseUser, initiative: Initiative, forum: Forum) -> dict[int, int]:
    """``user``'s values for ``initiative`` on ``forum``'s criteria (on or off): id → value."""
    if not user.is_authenticated:
        return {}
    return dict(
        Score.objects.filter(
            initiative=initiative, member=user, criterion__forum=forum
        ).values_list("criterion_id", "value")
    )


# ==============================================================================================
# The ranking
# ==============================================================================================


@dataclass
class RankedInitiative:
    """One initiative on a forum's list, with its aggregate."""

    pk: int
    title: str
    state: str
    created_at: datetime
    forum_id: int
    forum_name: str
    #: Each member's weighted score (member id → score), exact.
    member_scores: dict[int, Fraction] = field(default_factory=dict)
    mean: Fraction | None = None
    median: Fraction | None = None
    #: The mean raw value per active criterion (id → mean), over the members who scored it.
    criterion_means: dict[int, Fraction] = field(default_factory=dict)
    #: The reader's own weighted score (None: not scored, or no reader).
    mine: Fraction | None = None
    rank: int | None = None
    #: Shares its mean with a neighbour on the list; ``tie_break`` names what ordered them.
    tied: bool = False
    tie_break: str = ""

    @property
    def scorers(self) -> int:
        return len(self.member_scores)

    @property
    def state_label(self) -> str:
        return str(State(self.state).label)

    @property
    def tie_label(self) -> str:
        return str(TIE_BREAKS[self.tie_break]) if self.tie_break else ""


@dataclass
class Ranking:
    forum: Forum
    #: The forum's criteria in order, on and off (the aggregate uses the active ones).
    criteria: list[Criterion]
    #: Ranked initiatives first (rank 1, 2 …), then those nobody has scored yet.
    rows: list[RankedInitiative]

    @property
    def active_criteria(self) -> list[Criterion]:
        return [c for c in self.criteria if c.active]

    @property
    def ranked(self) -> list[RankedInitiative]:
        return [row for row in self.rows if row.rank is not None]

    @property
    def unscored(self) -> list[RankedInitiative]:
        return [row for row in self.rows if row.rank is None]

    def get(self, pk: int) -> RankedInitiative | None:
        return next((row for row in self.rows if row.pk == pk), None)

    tie_rule = TIE_RULE


def _order_key(row: RankedInitiative):
    return (-row.mean, -row.median, -row.scorers, row.created_at, row.pk)


def _tie_break(upper: RankedInitiative, lower: RankedInitiative) -> str:
    if upper.median != lower.median:
        return "median"
    if upper.scorers != lower.scorers:
        return "scorers"
    return "logged"


def ranking(
    forum: Forum,
    *,
    user: AbstractBaseUser | None = None,
    initiatives: QuerySet[Initiative] | None = None,
    criteria: list[Criterion] | None = None,
) -> Ranking:
    """``forum``'s ranked list (see the module's docstring for how it is computed).

    ``initiatives``: the ones to rank (default: those it scores now, ``rules.scorable_
    initiatives``); ``user``: whose own score each row carries as ``mine``; ``criteria``: the
    forum's criteria if already read. Two queries (criteria, then the initiatives with their
    scores in one), however many initiatives, members and criteria.
    """
    if criteria is None:
        criteria = criteria_ensure_defaults(forum)
    if initiatives is None:
        initiatives = scorable_initiatives(forum)
    active = {c.pk: c for c in criteria if c.active}
    fields = ["pk", "title", "state", "created_at", "forum_id", "forum__name"]
    found = initiatives.order_by()
    if active:
        found = found.annotate(
            forum_scores=FilteredRelation(
                "scores", condition=Q(scores__criterion_id__in=list(active))
            )
        )
        fields += ["forum_scores__member_id", "forum_scores__criterion_id", "forum_scores__value"]
    rows: dict[int, RankedInitiative] = {}
    # member → (Σ weight·value, Σ weight) per initiative; criterion → raw values.
    sums: dict[int, dict[int, list[Fraction]]] = defaultdict(dict)
    raw: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for values in found.values_list(*fields):
        pk, title, state, created_at, forum_id, forum_name = values[:6]
        if pk not in rows:
            rows[pk] = RankedInitiative(pk, title, state, created_at, forum_id, forum_name)
        if not active or values[6] is None:
            continue
        member_id, criterion_id, value = values[6:]
        criterion = active[criterion_id]
        weight = Fraction(criterion.weight)
        counted = value if criterion.higher_is_better else HIGHEST + LOWEST - value
        total = sums[pk].setdefault(member_id, [Fraction(0), Fraction(0)])
        total[0] += weight * counted
        total[1] += weight
        raw[pk][criterion_id].append(value)
    for pk, row in rows.items():
        row.member_scores = {
            member: weighted / weights
            for member, (weighted, weights) in sums.get(pk, {}).items()
            if weights > 0
        }
        row.criterion_means = {
            cid: Fraction(sum(given), len(given)) for cid, given in raw.get(pk, {}).items()
        }
        if row.member_scores:
            scores = list(row.member_scores.values())
            row.mean = sum(scores, Fraction(0)) / len(scores)
            row.median = median(scores)
        if user is not None and user.is_authenticated:
            row.mine = row.member_scores.get(user.pk)
    ranked = sorted((r for r in rows.values() if r.mean is not None), key=_order_key)
    for rank, row in enumerate(ranked, start=1):
        row.rank = rank
    for upper, lower in pairwise(ranked):
        if upper.mean == lower.mean:
            upper.tied = lower.tied = True
            lower.tie_break = _tie_break(upper, lower)
            if not upper.tie_break:
                upper.tie_break = lower.tie_break
    unscored = sorted(
        (r for r in rows.values() if r.mean is None), key=lambda r: (r.created_at, r.pk)
    )
    return Ranking(forum=forum, criteria=criteria, rows=ranked + unscored)


def initiative_aggregate(
    initiative: Initiative, forum: Forum, *, user: AbstractBaseUser | None = None
) -> tuple[Ranking, RankedInitiative | None]:
    """``forum``'s ranking and the initiative's row on it; an initiative it no longer scores
    (decided, or closed) gets its aggregate all the same, unranked among the rest."""
    board = ranking(forum, user=user)
    row = board.get(initiative.pk)
    if row is None:
        alone = ranking(
            forum,
            user=user,
            initiatives=Initiative.objects.filter(pk=initiative.pk),
            criteria=board.criteria,
        )
        row = alone.get(initiative.pk)
        if row is not None:
            row.rank = None
            row.tied, row.tie_break = False, ""
    return board, row


def scoring_forums(initiative: Initiative) -> list[Forum]:
    """The prioritising forums that have had ``initiative`` (its page's scores panel), or
    that scored it: the department group and the board, in that order."""
    had = initiative.activities.values("to_forum_id")
    scored = Score.objects.filter(initiative=initiative).values("criterion__forum_id")
    return list(
        Forum.objects.filter(
            Q(pk=initiative.forum_id) | Q(pk__in=had) | Q(pk__in=scored),
            kind__in=(ForumKind.DEPARTMENT_GROUP, ForumKind.DIVISION_BOARD),
        ).order_by("kind", "name", "pk")
    )


# ==============================================================================================
# Impact and effort
# ==============================================================================================


@dataclass
class ImpactEffort:
    """Mean impact against mean effort per initiative (raw values, 1–5)."""

    impact: Criterion | None
    effort: Criterion | None
    #: (row, mean impact, mean effort) for every initiative with both.
    points: list[tuple[RankedInitiative, Fraction, Fraction]]
    #: Scored initiatives lacking one of the two means.
    missing: list[RankedInitiative]


def impact_effort(
    forum: Forum,
    *,
    impact: Criterion | None = None,
    effort: Criterion | None = None,
    board: Ranking | None = None,
) -> ImpactEffort:
    """Mean impact against mean effort per initiative the forum has scored.

    Impact is the first active criterion where higher is better, effort the first where
    lower is better (with the stated criteria: Impact and Effort), unless the reader names
    others. ``board``: the forum's ranking if already computed (no further query).
    """
    board = board or ranking(forum)
    active = board.active_criteria
    if impact is None or not impact.active or impact.forum_id != forum.pk:
        impact = next((c for c in active if c.higher_is_better), None)
    if effort is None or not effort.active or effort.forum_id != forum.pk:
        effort = next((c for c in active if not c.higher_is_better), None)
    points, missing = [], []
    for row in board.ranked:
        x = row.criterion_means.get(effort.pk) if effort else None
        y = row.criterion_means.get(impact.pk) if impact else None
        if x is None or y is None:
            missing.append(row)
        else:
            points.append((row, y, x))
    return ImpactEffort(impact=impact, effort=effort, points=points, missing=missing)


# ==============================================================================================
# Prioritising in dialogue
# ==============================================================================================


@dataclass
class SharedInitiative:
    pk: int
    title: str
    department: RankedInitiative
    board: RankedInitiative
    #: Places among the initiatives both have ranked (None unless both ranked it).
    department_place: int | None = None
    board_place: int | None = None
    reasons: list[str] = field(default_factory=list)

    @property
    def place_gap(self) -> int | None:
        if self.department_place is None or self.board_place is None:
            return None
        return abs(self.department_place - self.board_place)

    @property
    def mean_gap(self) -> Fraction | None:
        if self.department.mean is None or self.board.mean is None:
            return None
        return abs(self.department.mean - self.board.mean)

    @property
    def disagrees(self) -> bool:
        return bool(self.reasons)


@dataclass
class Dialogue:
    department: Department
    group: Ranking
    board: Ranking
    shared: list[SharedInitiative]

    @property
    def shared_pks(self) -> frozenset[int]:
        return frozenset(s.pk for s in self.shared)

    @property
    def disagreements(self) -> list[SharedInitiative]:
        return [s for s in self.shared if s.disagrees]

    @property
    def disagreed_pks(self) -> frozenset[int]:
        return frozenset(s.pk for s in self.shared if s.disagrees)

    places = DISAGREEMENT_PLACES
    points = DISAGREEMENT_POINTS


def dialogue_forums(department: Department) -> tuple[Forum | None, Forum | None]:
    """The department's coordinating group and its division's board (either may be None)."""
    group = (
        Forum.objects.filter(kind=ForumKind.DEPARTMENT_GROUP, department=department)
        .order_by("pk")
        .first()
    )
    board = (
        Forum.objects.filter(kind=ForumKind.DIVISION_BOARD, division_id=department.division_id)
        .order_by("pk")
        .first()
    )
    return group, board


def dialogue(
    department_group: Forum, board: Forum, *, user: AbstractBaseUser | None = None
) -> Dialogue:
    """The department's ranked list and the board's side by side, from the two rankings.

    Shared: on both lists. Among the shared initiatives both have ranked, each forum's order
    gives a place (1, 2 …); they disagree on one when the places lie at least
    :data:`DISAGREEMENT_PLACES` apart, or when the mean scores differ by at least
    :data:`DISAGREEMENT_POINTS`. The places are counted among the shared ones only, so
    initiatives just one of them has do not make a disagreement.
    """
    group = ranking(department_group, user=user)
    top = ranking(board, user=user)
    on_board = {row.pk: row for row in top.rows}
    shared = [
        SharedInitiative(pk=row.pk, title=row.title, department=row, board=on_board[row.pk])
        for row in group.rows
        if row.pk in on_board
    ]
    both = [s for s in shared if s.department.rank is not None and s.board.rank is not None]
    for place, item in enumerate(sorted(both, key=lambda s: s.department.rank), start=1):
        item.department_place = place
    for place, item in enumerate(sorted(both, key=lambda s: s.board.rank), start=1):
        item.board_place = place
    for item in both:
        if item.place_gap >= DISAGREEMENT_PLACES:
            item.reasons.append("places")
        if item.mean_gap >= DISAGREEMENT_POINTS:
            item.reasons.append("points")
    return Dialogue(department=department_group.department, group=group, board=top, shared=shared)
