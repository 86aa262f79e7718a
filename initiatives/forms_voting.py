"""Forms of board voting: opening a round, the ballot, closing early. They only parse; the
services in ``initiatives.voting`` decide."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from forums.models import Meeting

from .enums import VoteChoice
from .voting import MAX_COMMENT

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"


class RoundOpenForm(forms.Form):
    deadline = forms.DateTimeField(
        label=_("Deadline"),
        input_formats=[DATETIME_LOCAL, "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_LOCAL),
        help_text=_("The round closes by itself then, or earlier once every member has voted."),
    )
    quorum = forms.IntegerField(
        label=_("Quorum"),
        min_value=1,
        help_text=_("How many members must vote (abstaining counts) for the vote to decide."),
    )
    comment = forms.CharField(
        label=_("Comment"),
        required=False,
        max_length=MAX_COMMENT,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("What the members should read before they vote."),
    )
    meeting = forms.ModelChoiceField(
        label=_("Decided in the meeting"),
        queryset=Meeting.objects.none(),
        required=False,
        empty_label=_("— not in a meeting —"),
    )

    def __init__(self, *args, board_id: int, eligible: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["meeting"].queryset = Meeting.objects.filter(forum_id=board_id).order_by(
            "-starts_at"
        )
        self.fields["quorum"].max_value = max(eligible, 1)
        self.fields["quorum"].widget.attrs["max"] = max(eligible, 1)
        if not self.is_bound:
            in_a_week = timezone.localtime() + timedelta(days=7)
            self.initial.setdefault("deadline", in_a_week.replace(second=0, microsecond=0))
            self.initial.setdefault("quorum", eligible // 2 + 1 if eligible else 1)


class VoteForm(forms.Form):
    choice = forms.ChoiceField(
        label=_("Your vote"), choices=VoteChoice.choices, widget=forms.RadioSelect
    )
    comment = forms.CharField(
        label=_("Comment"),
        required=False,
        max_length=MAX_COMMENT,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Shown with your vote once the round has closed."),
    )
    interest_declared = forms.BooleanField(
        label=_("I have an interest in this initiative"),
        required=False,
        help_text=_(
            "Tick it if you, your department or your unit stand to gain or lose by the "
            "decision (it comes from your department, you proposed it, …). Your vote still "
            "counts; the result shows how many votes came with an interest. A vote from the "
            "initiative's own department is marked so in any case."
        ),
    )


class RoundCloseForm(forms.Form):
    comment = forms.CharField(
        label=_("Why close it now"),
        required=False,
        max_length=MAX_COMMENT,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
