"""Pages of board voting: the board's open rounds, a round (ballot, result), opening one,
closing one early. Thin: the rules decide who sees what, the services in
``initiatives.voting`` write and refuse, and a refusal shows their message with the status
its code means (403, 409, 400), never a 500.

The ballot posts with HTMX and gets the round's fragment back, refused or not (forms marked
``data-swap-errors`` are swapped on a 4xx by ``static/js/initiatives.js``); without JavaScript
the same posts answer a redirect or the whole page.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .enums import RoundStatus, VoteChoice
from .forms_voting import RoundCloseForm, RoundOpenForm, VoteForm
from .models import VotingRound
from .rules import can_open_round, is_admin, is_board_member, visible_initiatives
from .selectors_voting import open_rounds_for_member, round_view, visible_rounds
from .voting import board_members, vote_cast, voting_round_close, voting_round_open


def service_error_status(error: ValidationError) -> int:
    """The status a service's refusal means (as ``lhs.api`` maps it for the API, which this
    app may not import): not_permitted 403, not_found 404, stale/conflict 409, else 400."""
    if hasattr(error, "error_dict"):
        codes = {e.code for errors in error.error_dict.values() for e in errors}
    else:
        codes = {e.code for e in error.error_list}
    for code, status in (("not_permitted", 403), ("not_found", 404), ("stale", 409)):
        if code in codes:
            return status
    return 409 if "conflict" in codes else 400


def _refused(request, message: str, status: int = 403):
    return render(request, "initiatives/voting/refused.html", {"message": message}, status=status)


def _put_errors(form, error: ValidationError) -> str:
    """The service's field errors next to their fields; the rest is the page's message."""
    if hasattr(error, "error_dict"):
        rest = []
        for name, errors in error.error_dict.items():
            for e in errors:
                if name in form.fields:
                    form.add_error(name, e)
                else:
                    rest.extend(e.messages)
        return " ".join(rest)
    return " ".join(error.messages)


def vote_form(voting_round: VotingRound, mine=None, data=None) -> VoteForm:
    initial = {}
    if mine is not None:
        initial = {
            "choice": mine.choice,
            "comment": mine.comment,
            "interest_declared": mine.interest_declared,
        }
    return VoteForm(data, initial=initial, auto_id=f"id_round{voting_round.pk}_%s")


def round_context(request, voting_round: VotingRound, *, form=None, refusal="", note="") -> dict:
    """What the round's fragment shows; the page, the HTMX answers and the panel share it."""
    view = round_view(request.user, voting_round)
    return {
        "view": view,
        "round": voting_round,
        "initiative": voting_round.initiative,
        "form": form if form is not None else vote_form(voting_round, view.mine),
        "close_form": RoundCloseForm(auto_id=f"id_close{voting_round.pk}_%s"),
        "refusal": refusal,
        "note": note,
    }


@require_GET
def voting_board(request):
    """The open rounds of the boards one sits on, soonest deadline first."""
    user = request.user
    if not (is_board_member(user) or is_admin(user)):
        return _refused(request, _("This list is for the members of a division board."))
    rounds = list(open_rounds_for_member(user))
    return render(request, "initiatives/voting/board.html", {"rounds": rounds})


@require_GET
def voting_round(request, pk: int):
    voting_round = get_object_or_404(visible_rounds(request.user), pk=pk)
    return render(request, "initiatives/voting/round.html", round_context(request, voting_round))


@require_POST
def vote(request, pk: int):
    """Cast or change one's vote; a second identical post changes nothing but the time."""
    voting_round = get_object_or_404(visible_rounds(request.user), pk=pk)
    form = vote_form(voting_round, data=request.POST)
    status, refusal, note = 200, "", ""
    if not form.is_valid():
        status = 400
    else:
        try:
            cast = vote_cast(
                user=request.user,
                round=voting_round,
                choice=form.cleaned_data["choice"],
                comment=form.cleaned_data["comment"],
                interest_declared=form.cleaned_data["interest_declared"],
            )
        except ValidationError as error:
            status = service_error_status(error)
            refusal = _put_errors(form, error)
        else:
            note = _("Your vote is recorded: %(choice)s.") % {
                "choice": VoteChoice(cast.choice).label
            }
            if voting_round.status == RoundStatus.CLOSED:
                note = _("Your vote was the last: the round has closed.")
            if not request.htmx:
                messages.success(request, note)
                return redirect("initiatives:voting-round", pk=voting_round.pk)
            form = None  # the fragment shows the vote as stored
    context = round_context(request, voting_round, form=form, refusal=refusal, note=note)
    if request.htmx:
        response = render(request, "initiatives/voting/_round.html", context, status=status)
        if voting_round.status == RoundStatus.CLOSED and status == 200:
            # The initiative has moved: its page (state, steps, history) is out of date.
            response["HX-Refresh"] = "true"
        return response
    return render(request, "initiatives/voting/round.html", context, status=status)


@require_POST
def round_close(request, pk: int):
    """The chair closes the round before its deadline."""
    voting_round = get_object_or_404(visible_rounds(request.user), pk=pk)
    form = RoundCloseForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    try:
        voting_round_close(round=voting_round, user=request.user, comment=comment)
    except ValidationError as error:
        context = round_context(request, voting_round, refusal=" ".join(error.messages))
        status = service_error_status(error)
        return render(request, "initiatives/voting/round.html", context, status=status)
    messages.success(
        request,
        _("The vote is closed. Outcome: %(outcome)s.")
        % {"outcome": voting_round.get_outcome_display()},
    )
    return redirect("initiatives:voting-round", pk=voting_round.pk)


@require_http_methods(["GET", "POST"])
def round_open(request, pk: int):
    """The board's chair opens a vote on an initiative at the board."""
    initiative = get_object_or_404(visible_initiatives(request.user).select_related("forum"), pk=pk)
    if request.method == "GET" and not can_open_round(request.user, initiative):
        return _refused(
            request,
            _(
                "A vote on scale-up is opened by the chair of the division board, on an "
                "initiative referred to the board."
            ),
        )
    eligible = board_members(initiative.forum_id).count()
    meeting = request.GET.get("meeting", "")
    form = RoundOpenForm(
        request.POST if request.method == "POST" else None,
        board_id=initiative.forum_id,
        eligible=eligible,
        initial={"meeting": meeting} if meeting.isdigit() else None,
    )
    status, refusal = 200, ""
    if form.is_bound:
        if not form.is_valid():
            status = 400
        else:
            try:
                opened = voting_round_open(
                    user=request.user,
                    initiative=initiative,
                    deadline=form.cleaned_data["deadline"],
                    quorum=form.cleaned_data["quorum"],
                    comment=form.cleaned_data["comment"],
                    meeting=form.cleaned_data["meeting"],
                )
            except ValidationError as error:
                status = service_error_status(error)
                refusal = _put_errors(form, error)
            else:
                messages.success(request, _("The vote is open."))
                return redirect("initiatives:voting-round", pk=opened.pk)
    context = {"initiative": initiative, "form": form, "eligible": eligible, "refusal": refusal}
    return render(request, "initiatives/voting/open.html", context, status=status)
