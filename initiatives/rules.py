"""Who may do what with initiatives: django-rules predicates and the permissions built on them.

Views, the API and templates all ask ``user.has_perm("initiatives.<name>", obj)`` (templates:
``{% has_perm "initiatives.transition" user initiative as can_move %}``); the service asks the
same predicates. Which *step* a user may take is the workflow table's answer
(:func:`workflow.transitions_for`); these predicates are built on it, never beside it.

Note: Django answers ``has_perm`` with True for every active superuser before any backend is
asked. The services therefore check the table themselves (admins may take only the steps the
table has from where the initiative is), and ``rules.has_perm(name, user, obj)`` gives the
predicate's own answer where that matters (e.g. whether to show a button at all).
"""

from __future__ import annotations

import rules
from django.db.models import Q, QuerySet
from django.utils import timezone

from forums.enums import ForumKind, MembershipRole
from forums.models import Forum, Membership
from forums.rules import forum_role
from forums.rules import is_board_member as _sits_on_a_board
from forums.rules import is_support_staff as _is_support_staff
from units.models import Unit

from . import workflow
from .enums import RoundStatus, SupportState
from .models import Initiative
from .workflow import Relation


def _active(user) -> bool:
    return bool(user.is_authenticated and user.is_active)


@rules.predicate
def is_active_user(user) -> bool:
    return _active(user)


@rules.predicate
def is_admin(user) -> bool:
    return workflow.is_admin(user)


@rules.predicate
def is_chair_of_current_forum(user, initiative) -> bool:
    return (Relation.CURRENT, MembershipRole.CHAIR) in workflow.standing_of(user, initiative)


@rules.predicate
def records_decisions_in_current_forum(user, initiative) -> bool:
    standing = workflow.standing_of(user, initiative)
    return any((Relation.CURRENT, role) in standing for role in workflow.DECIDERS)


@rules.predicate
def is_board_member(user) -> bool:
    """Sits on a division board, in any role."""
    return _active(user) and _sits_on_a_board(user)


@rules.predicate
def is_initiative_creator(user, initiative) -> bool:
    return _active(user) and initiative.created_by_id == user.pk


@rules.predicate
def can_take_transition(user, initiative) -> bool:
    """May take at least one step of the table on the initiative now."""
    return bool(workflow.transitions_for(user, initiative))


def can_take(user, initiative, name: str) -> bool:
    """May take the step called ``name`` now."""
    return any(t.name == name for t in workflow.transitions_for(user, initiative))


@rules.predicate
def can_log_in_forum(user, forum) -> bool:
    """Chairs and secretaries log initiatives in a unit forum, department group or board;
    every member too where the forum allows it (``Forum.members_may_log``)."""
    if forum.kind not in workflow.LOG_AT or not _active(user):
        return False
    if workflow.is_admin(user):
        return True
    role = forum_role(user, forum)
    return role in workflow.LOG_ROLES or (role is not None and forum.members_may_log)


def loggable_forums(user) -> QuerySet[Forum]:
    """The forums ``user`` may log initiatives in (the log form's chooser), one query."""
    if not _active(user):
        return Forum.objects.none()
    forums = Forum.objects.filter(kind__in=workflow.LOG_AT)
    if workflow.is_admin(user):
        return forums
    mine = Membership.objects.filter(user=user)
    return forums.filter(
        Q(pk__in=mine.filter(role__in=workflow.LOG_ROLES).values("forum_id"))
        | Q(members_may_log=True, pk__in=mine.values("forum_id"))
    )


def visible_initiatives(user) -> QuerySet[Initiative]:
    """The initiatives ``user`` may see: the division works openly, so every active member of
    staff sees every initiative (``initiatives.view_initiative``); nobody else sees any.

    Views and the API fetch initiatives only through this, so what one may not see is a 404.
    """
    if not _active(user):
        return Initiative.objects.none()
    return Initiative.objects.all()


@rules.predicate
def can_edit_initiative(user, initiative) -> bool:
    """The current forum's chair or secretary, or the person who logged it, while it is open
    (some step of the table still leaves its state)."""
    if not _active(user) or initiative.state in workflow.TERMINAL:
        return False
    if workflow.is_admin(user) or initiative.created_by_id == user.pk:
        return True
    standing = workflow.standing_of(user, initiative)
    return any((Relation.CURRENT, role) in standing for role in workflow.DECIDERS)


def pdsa_units(user) -> QuerySet[Unit]:
    """Units a person may run PDSA cycles in.

    Any member of a unit forum for the units it serves (the professionals run the cycles);
    chairs and secretaries of a department group for the department's units; admins: all.
    """
    if not _active(user):
        return Unit.objects.none()
    if user.is_superuser:
        return Unit.objects.all()
    mine = Membership.objects.filter(user=user)
    unit_forums = mine.filter(forum__kind=ForumKind.UNIT_FORUM).values("forum_id")
    departments = mine.filter(
        forum__kind=ForumKind.DEPARTMENT_GROUP, role__in=workflow.DECIDERS
    ).values("forum__department_id")
    return Unit.objects.filter(
        Q(forums__in=unit_forums) | Q(department_id__in=departments)
    ).distinct()


def can_run_pdsa_in(user, initiative, unit: Unit) -> bool:
    return initiative.state not in workflow.CLOSED and pdsa_units(user).filter(pk=unit.pk).exists()


@rules.predicate
def can_add_pdsa_cycle(user, initiative) -> bool:
    """The initiative is still open and the person may run cycles in some unit."""
    return initiative.state not in workflow.CLOSED and pdsa_units(user).exists()


rules.add_perm("initiatives.view_initiative", is_active_user)
rules.add_perm("initiatives.log_initiative", can_log_in_forum)
rules.add_perm("initiatives.transition", can_take_transition)
rules.add_perm("initiatives.add_pdsacycle", can_add_pdsa_cycle)
rules.add_perm("initiatives.change_initiative", can_edit_initiative)


# --- Support requests and attachments -------------------------------------------------------
# Who may ask the support unit for help on an initiative, or attach a file to it: anyone who
# sits in the forum it sits in (any role), the person who logged it, and admins; never on a
# closed initiative. The support unit's members take the requests; the one who took a request
# (or the unit's chair) answers or releases it. Files: seen by whoever may see the initiative,
# deleted by the uploader or the deciders of the forum the initiative sits in.
# Every predicate answers False for a missing object, so a has_perm without one (the admin
# site's) is never granted here.


def _memo(user, key, compute):
    """An answer kept on the user object for the rest of the request (a request has a user
    object of its own), so a list asking the same of every row asks the database once."""
    store = user.__dict__.setdefault("_lhs_support_rules", {})
    if key not in store:
        store[key] = compute()
    return store[key]


def _support_role(user, support_request) -> str | None:
    """The role ``user`` holds in the support unit the request went to."""
    if not _active(user):
        return None
    roles = _memo(
        user,
        "support_roles",
        lambda: dict(
            Membership.objects.filter(user=user, forum__kind=ForumKind.SUPPORT_UNIT).values_list(
                "forum_id", "role"
            )
        ),
    )
    return roles.get(support_request.support_forum_id)


@rules.predicate
def can_request_support(user, initiative) -> bool:
    """Sits in the initiative's current forum, logged it, or is an admin; it is not closed."""
    if initiative is None or not _active(user) or initiative.state in workflow.CLOSED:
        return False
    if workflow.is_admin(user):
        return True
    standing = workflow.standing_of(user, initiative)
    return (Relation.CREATOR, "") in standing or any(
        relation == Relation.CURRENT for relation, _role in standing
    )


@rules.predicate
def can_view_support_request(user, support_request) -> bool:
    return support_request is not None and user.has_perm(
        "initiatives.view_initiative", support_request.initiative
    )


@rules.predicate
def is_support_unit_member(user) -> bool:
    """Sits in a support unit (or is an admin): may see the support queue."""
    return _active(user) and (workflow.is_admin(user) or _is_support_staff(user))


def sits_in_support_unit_of(user, support_request) -> bool:
    """Sits in the support unit the request went to (any role), or is an admin."""
    return workflow.is_admin(user) or _support_role(user, support_request) is not None


def answers_for(user, support_request) -> bool:
    """Took the request, chairs the support unit it went to, or is an admin."""
    if not _active(user):
        return False
    if workflow.is_admin(user) or support_request.taken_by_id == user.pk:
        return True
    return _support_role(user, support_request) == MembershipRole.CHAIR


@rules.predicate
def can_take_support_request(user, support_request) -> bool:
    """An open request, and the person sits in the support unit it went to (or is an admin)."""
    if support_request is None or support_request.state != SupportState.OPEN:
        return False
    return sits_in_support_unit_of(user, support_request)


@rules.predicate
def can_answer_support_request(user, support_request) -> bool:
    """A taken request: its taker, or the support unit's chair, answers it (marks it done)."""
    if support_request is None or support_request.state != SupportState.TAKEN:
        return False
    return answers_for(user, support_request)


@rules.predicate
def can_release_support_request(user, support_request) -> bool:
    """A taken request: its taker, or the support unit's chair, gives it back to the queue."""
    return can_answer_support_request(user, support_request)


@rules.predicate
def can_add_attachment(user, initiative) -> bool:
    return can_request_support(user, initiative)


@rules.predicate
def can_view_attachment(user, attachment) -> bool:
    return attachment is not None and user.has_perm(
        "initiatives.view_initiative", attachment.initiative
    )


@rules.predicate
def can_delete_attachment(user, attachment) -> bool:
    """The uploader, the deciders of the forum the initiative sits in, or an admin."""
    if attachment is None or not _active(user):
        return False
    if workflow.is_admin(user) or attachment.uploaded_by_id == user.pk:
        return True
    initiative = attachment.initiative

    def decides() -> bool:
        standing = workflow.standing_of(user, initiative)
        return any((Relation.CURRENT, role) in standing for role in workflow.DECIDERS)

    return _memo(user, ("decides", initiative.pk, initiative.forum_id), decides)


rules.add_perm("initiatives.add_supportrequest", can_request_support)
rules.add_perm("initiatives.view_supportrequest", can_view_support_request)
rules.add_perm("initiatives.view_support_queue", is_support_unit_member)
rules.add_perm("initiatives.take_supportrequest", can_take_support_request)
rules.add_perm("initiatives.answer_supportrequest", can_answer_support_request)
rules.add_perm("initiatives.release_supportrequest", can_release_support_request)
rules.add_perm("initiatives.add_attachment", can_add_attachment)
rules.add_perm("initiatives.view_attachment", can_view_attachment)
rules.add_perm("initiatives.delete_attachment", can_delete_attachment)


# --- Board voting (initiatives.voting) ----------------------------------------------------------
# The board's chair opens a round on an initiative that sits at the board (the table's
# ``open_vote`` step) and may close it early (the steps a closing round takes name the chair,
# or the system when it closes by itself). Every member of that board, in any role, votes
# while the round is open and before its deadline; an admin votes only if they sit on it.
# Ballots are secret until the round closes: meanwhile members see who has voted, not how.
# Every predicate answers False for a missing object, so a has_perm without one (the admin
# site's) is never granted here.


def _sits_on(user, forum_id: int) -> bool:
    return _active(user) and Membership.objects.filter(user=user, forum_id=forum_id).exists()


def _round_is_open(voting_round) -> bool:
    return voting_round.status == RoundStatus.OPEN


@rules.predicate
def can_open_round(user, initiative) -> bool:
    """May take the table's ``open_vote`` step now (the board's chair; admins)."""
    return initiative is not None and _active(user) and can_take(user, initiative, "open_vote")


@rules.predicate
def can_vote(user, voting_round) -> bool:
    """A member of the round's board, while it is open and before its deadline."""
    return (
        voting_round is not None
        and _round_is_open(voting_round)
        and voting_round.deadline > timezone.now()
        and _sits_on(user, voting_round.forum_id)
    )


def closes_rounds_of(user, voting_round) -> bool:
    """Holds the role that closes the round early, open or not: a person among the actors of
    the steps a closing round takes (the chair of the board it sits at), or an admin."""
    if voting_round is None or not _active(user):
        return False
    if workflow.is_admin(user):
        return True
    initiative = voting_round.initiative
    if initiative.forum_id != voting_round.forum_id:
        return False
    closing = workflow.BY_NAME["approve_scale_up"]
    return closing.permits(workflow.standing_of(user, initiative))


@rules.predicate
def can_close_round(user, voting_round) -> bool:
    """May close the round early now: it is open and ``user`` closes rounds of its board."""
    return (
        voting_round is not None
        and _round_is_open(voting_round)
        and closes_rounds_of(user, voting_round)
    )


@rules.predicate
def can_see_ballots(user, voting_round) -> bool:
    """How each member voted: for every member of staff once the round has closed."""
    return voting_round is not None and _active(user) and not _round_is_open(voting_round)


rules.add_perm("initiatives.open_votinground", can_open_round)
rules.add_perm("initiatives.cast_vote", can_vote)
rules.add_perm("initiatives.close_votinground", can_close_round)
rules.add_perm("initiatives.view_ballots", can_see_ballots)


# --- Scale-up plans, department spreads and adoptions ----------------------------------------
# A scale-up plan and a department's spread are steps of the table (start_scale_up,
# spread_in_department) taken through their own forms: whoever may take the step may make
# the plan. A unit's adoption is updated by the chair or secretary of a unit forum that serves
# the unit, and by the deciders of the forum the initiative sits in (the board during a
# scale-up, the department group during its spread); never on a closed initiative. The spread
# overview is the board's (its members, in any role) and admins'.


def adoption_units_for(user, initiative) -> frozenset[int] | None:
    """The units whose adoption of ``initiative`` the user may update: ``None`` for every
    unit (an admin, or a decider of the forum it sits in), else the units of the unit forums
    the user chairs or is secretary of (two queries at most, for a whole list of adoptions)."""
    if not _active(user) or initiative.state in workflow.CLOSED:
        return frozenset()
    if workflow.is_admin(user):
        return None
    standing = workflow.standing_of(user, initiative)
    if any((Relation.CURRENT, role) in standing for role in workflow.DECIDERS):
        return None
    return frozenset(
        Unit.objects.filter(
            forums__kind=ForumKind.UNIT_FORUM,
            forums__memberships__user=user,
            forums__memberships__role__in=workflow.DECIDERS,
        ).values_list("pk", flat=True)
    )


@rules.predicate
def can_update_adoption(user, adoption) -> bool:
    if adoption is None:
        return False
    units = adoption_units_for(user, adoption.initiative)
    return units is None or adoption.unit_id in units


@rules.predicate
def can_plan_scale_up(user, initiative) -> bool:
    """May take ``start_scale_up`` now: the board's chair or secretary, once it is approved."""
    return initiative is not None and can_take(user, initiative, "start_scale_up")


@rules.predicate
def can_start_department_spread(user, initiative) -> bool:
    """May take ``spread_in_department`` now: the department group's chair or secretary."""
    return initiative is not None and can_take(user, initiative, "spread_in_department")


@rules.predicate
def can_view_spread(user) -> bool:
    return _active(user) and (workflow.is_admin(user) or _sits_on_a_board(user))


rules.add_perm("initiatives.change_adoption", can_update_adoption)
rules.add_perm("initiatives.add_scaleupplan", can_plan_scale_up)
rules.add_perm("initiatives.start_department_spread", can_start_department_spread)
rules.add_perm("initiatives.view_spread", can_view_spread)


# --- Prioritisation (initiatives.prioritisation) ----------------------------------------------
# Department coordinating groups and division boards prioritise; unit forums and the support
# unit do not. A forum scores the initiatives that are its business and still on the road to a
# decision: those sitting in it now, and those it has had (an activity brought them there:
# sent on to the board, handed down, returned), while their state is one of
# PRIORITISATION_STATES. So a department group keeps scoring what it referred to the board, and
# the two forums can prioritise in dialogue. Every member of the forum scores, in any role;
# an admin scores only where they sit (a score is a member's judgement). The chair of the
# forum (or an admin) configures its criteria. The ranking, its aggregates and the criteria
# are read by every member of staff (the division works openly); each member's own scores are
# seen by that member only. Every predicate answers False for a missing object.

#: The kinds of forum that prioritise.
PRIORITISING_FORUMS = frozenset({ForumKind.DEPARTMENT_GROUP, ForumKind.DIVISION_BOARD})
#: States in which an initiative is still scored: before a decision to spread or scale it up,
#: and not rejected or withdrawn (local testing and local adoption are the units' business).
PRIORITISATION_STATES = frozenset(
    {
        workflow.State.LOGGED,
        workflow.State.ESCALATED_TO_DEPARTMENT,
        workflow.State.PRIORITISED,
        workflow.State.SPREAD_IN_DEPARTMENT,
        workflow.State.REFERRED_TO_BOARD,
        workflow.State.VOTING,
        workflow.State.RETURNED_FOR_MORE_WORK,
    }
)


def prioritises(forum) -> bool:
    return forum is not None and forum.kind in PRIORITISING_FORUMS


def initiatives_of_forum(forum) -> QuerySet[Initiative]:
    """The initiatives ``forum`` has had: sitting in it now, or brought to it by some step."""
    had = Initiative.objects.filter(activities__to_forum=forum).values("pk")
    return Initiative.objects.filter(Q(forum=forum) | Q(pk__in=had))


def scorable_initiatives(forum) -> QuerySet[Initiative]:
    """The initiatives ``forum`` scores now (its ranked list): see the section's comment."""
    if not prioritises(forum):
        return Initiative.objects.none()
    return initiatives_of_forum(forum).filter(state__in=PRIORITISATION_STATES)


def may_be_scored_in(initiative, forum) -> bool:
    """``forum`` scores ``initiative`` now (one query at most)."""
    if initiative is None or not prioritises(forum):
        return False
    if initiative.state not in PRIORITISATION_STATES:
        return False
    return (
        initiative.forum_id == forum.pk
        or initiative.activities.filter(to_forum_id=forum.pk).exists()
    )


def can_score(user, initiative, forum) -> bool:
    """``user`` may score ``initiative`` in ``forum``: sits in it (any role), and the forum
    scores the initiative now."""
    return (
        _active(user)
        and prioritises(forum)
        and forum_role(user, forum) is not None
        and may_be_scored_in(initiative, forum)
    )


@rules.predicate
def can_score_in_forum(user, forum) -> bool:
    """Sits in a prioritising forum: scores what it prioritises."""
    return _active(user) and prioritises(forum) and forum_role(user, forum) is not None


@rules.predicate
def can_score_initiative(user, initiative) -> bool:
    """May score ``initiative`` in at least one forum (the initiative page's form)."""
    if initiative is None or not _active(user):
        return False
    if initiative.state not in PRIORITISATION_STATES:
        return False
    had = initiative.activities.values("to_forum_id")
    return Membership.objects.filter(
        Q(forum_id=initiative.forum_id) | Q(forum_id__in=had),
        user=user,
        forum__kind__in=PRIORITISING_FORUMS,
    ).exists()


@rules.predicate
def can_configure_criteria(user, forum) -> bool:
    """The forum's chair (or an admin) sets its criteria: names, weights, order, on or off."""
    if not prioritises(forum) or not _active(user):
        return False
    return workflow.is_admin(user) or forum_role(user, forum) == MembershipRole.CHAIR


@rules.predicate
def can_view_prioritisation(user, forum) -> bool:
    """A prioritising forum's ranking and criteria: every member of staff."""
    return _active(user) and prioritises(forum)


rules.add_perm("initiatives.score_initiative", can_score_initiative)
rules.add_perm("initiatives.score_in_forum", can_score_in_forum)
rules.add_perm("initiatives.configure_criteria", can_configure_criteria)
rules.add_perm("initiatives.view_prioritisation", can_view_prioritisation)
# As a rule too, for templates that must not offer an admin a page a forum does not have
# (``{% test_rule "initiatives.view_prioritisation" user forum as x %}``).
rules.add_rule("initiatives.view_prioritisation", can_view_prioritisation)
