"""Forms of the initiative pages: what they ask, with choices limited to what may be chosen.

The forms check shapes (a date, a choice); the services decide (who may, what applies) and
their refusals are shown next to the field they name (:func:`add_service_error`).
"""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from forums.enums import ForumKind
from forums.models import Forum, Meeting
from measures.enums import Scope
from measures.models import Measure
from units.models import Department, Unit

from . import workflow
from .attachments import ACCEPT as ATTACHMENT_ACCEPT
from .enums import Effort, InitiativeKind, OriginKind, State
from .rules import pdsa_units
from .selectors import (
    INITIATIVE_ORDERINGS,
    measures_applying_to_forum,
    measures_applying_to_unit,
    move_candidates,
    origin_units_of_forum,
)
from .workflow import Move, Transition


def add_service_error(form: forms.Form, error: ValidationError) -> None:
    """A service's refusal shown next to the field it names (or above the form)."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


class MeasureChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Measure) -> str:
        return f"{obj.name} ({obj.code})"


def _measures_queryset(forum: Forum, keep=()):
    """Active measures recorded where the forum works, plus those already linked."""
    applying = measures_applying_to_forum(forum)
    kept = [m.pk for m in keep]
    return (
        Measure.objects.filter(pk__in=applying.filter(active=True).values("pk"))
        | Measure.objects.filter(pk__in=kept)
    ).order_by("name")


# -- the list ---------------------------------------------------------------------------------

_SORTS = [
    ("-updated", _("Last changed")),
    ("-created", _("Newest")),
    ("created", _("Oldest")),
    ("title", _("Title")),
    ("state", _("State")),
    ("forum", _("Forum")),
    ("kind", _("Kind")),
]
SORT_KEYS = frozenset(k for key in INITIATIVE_ORDERINGS for k in (key, f"-{key}"))


class InitiativeFilterForm(forms.Form):
    """The list's filters (the page and the API's list read the same form)."""

    q = forms.CharField(label=_("Search"), required=False, max_length=200)
    forum = forms.ModelChoiceField(
        label=_("Forum"),
        queryset=Forum.objects.filter(kind__in=workflow.LOG_AT),
        required=False,
        empty_label=_("Any forum"),
    )
    state = forms.ChoiceField(
        label=_("State"), choices=[("", _("Any state")), *State.choices], required=False
    )
    kind = forms.ChoiceField(
        label=_("Kind"), choices=[("", _("Any kind")), *InitiativeKind.choices], required=False
    )
    origin = forms.ChoiceField(
        label=_("Origin"), choices=[("", _("Any origin")), *OriginKind.choices], required=False
    )
    department = forms.ModelChoiceField(
        label=_("Department"),
        queryset=Department.objects.all(),
        required=False,
        empty_label=_("Any department"),
    )
    mine = forms.BooleanField(
        label=_("Mine"),
        required=False,
        help_text=_("Logged by me, or sitting in a forum I sit in."),
    )
    sort = forms.ChoiceField(label=_("Sort by"), required=False, choices=[])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sort"].choices = [
            *_SORTS,
            *((k, k) for k in sorted(SORT_KEYS) if k not in dict(_SORTS)),
        ]

    def search_arguments(self) -> dict:
        """The keyword arguments of ``selectors.initiative_search`` (call after is_valid)."""
        data = self.cleaned_data
        return {
            "forum": data.get("forum"),
            "state": data.get("state") or "",
            "kind": data.get("kind") or "",
            "origin": data.get("origin") or "",
            "department": data.get("department"),
            "q": data.get("q") or "",
            "mine": bool(data.get("mine")),
            "ordering": data.get("sort") or "-updated",
        }


# -- logging and editing ----------------------------------------------------------------------


class InitiativeForm(forms.Form):
    """Log an initiative in one forum: the units and measures offered are that forum's."""

    title = forms.CharField(label=_("Title"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 5})
    )
    kind = forms.ChoiceField(label=_("Kind"), choices=InitiativeKind.choices)
    origin_kind = forms.ChoiceField(
        label=_("Where it comes from"),
        choices=OriginKind.choices,
        help_text=_("One of our units, or a source outside the division."),
    )
    origin_unit = forms.ModelChoiceField(
        label=_("Unit of origin"),
        queryset=Unit.objects.none(),
        required=False,
        help_text=_("For an idea or need from one of our units."),
    )
    origin_reference = forms.CharField(
        label=_("Reference"),
        max_length=500,
        required=False,
        help_text=_("For an external source: the article, guideline, hospital or product."),
    )
    measures = MeasureChoiceField(
        label=_("Linked measures"),
        queryset=Measure.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The measures it should move (those recorded where this forum works)."),
    )
    expected_benefit = forms.CharField(
        label=_("Expected benefit"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    effort = forms.ChoiceField(
        label=_("Effort"), choices=[("", _("Not estimated")), *Effort.choices], required=False
    )
    # Attached in the same transaction as the initiative is logged (initiatives.attachments):
    # a refused file logs nothing, and says why next to this field.
    file = forms.FileField(
        label=_("Attach a file"),
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ATTACHMENT_ACCEPT}),
        help_text=_(
            "Optional: a plan, a report or a picture (PDF, image, Word, Excel, PowerPoint, "
            "OpenDocument, text or CSV). More can be attached on the initiative's page."
        ),
    )

    def __init__(self, *args, forum: Forum, **kwargs):
        super().__init__(*args, **kwargs)
        self.forum = forum
        units = origin_units_of_forum(forum)
        self.fields["origin_unit"].queryset = units
        self.fields["measures"].queryset = _measures_queryset(forum)
        if forum.kind == ForumKind.UNIT_FORUM:
            served = list(units[:2])
            if len(served) == 1:
                self.fields["origin_unit"].initial = served[0].pk


class InitiativeEditForm(forms.Form):
    """What may change while it is open; where it is changes by the workflow's steps only."""

    title = forms.CharField(label=_("Title"), max_length=200)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 5})
    )
    measures = MeasureChoiceField(
        label=_("Linked measures"),
        queryset=Measure.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    expected_benefit = forms.CharField(
        label=_("Expected benefit"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    effort = forms.ChoiceField(
        label=_("Effort"), choices=[("", _("Not estimated")), *Effort.choices], required=False
    )
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)

    def __init__(self, *args, initiative, **kwargs):
        linked = list(initiative.measures.all())
        kwargs.setdefault(
            "initial",
            {
                "title": initiative.title,
                "description": initiative.description,
                "measures": [m.pk for m in linked],
                "expected_benefit": initiative.expected_benefit,
                "effort": initiative.effort,
                "version": initiative.version,
            },
        )
        super().__init__(*args, **kwargs)
        self.fields["measures"].queryset = _measures_queryset(initiative.forum, keep=linked)


# -- a step of the workflow -------------------------------------------------------------------


class MeetingChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Meeting) -> str:
        where = f" – {obj.location}" if obj.location else ""
        return f"{obj.starts_at:%Y-%m-%d %H:%M}{where}"


class StepForm(forms.Form):
    """What one step needs: a comment where it records a decision, the forum to send it to
    where the actor chooses, and the meeting it was decided in (optional)."""

    comment = forms.CharField(
        label=_("Comment"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    target_forum = forms.ModelChoiceField(
        label=_("Send it to"), queryset=Forum.objects.none(), required=False
    )
    meeting = MeetingChoiceField(
        label=_("Decided in the meeting"),
        queryset=Meeting.objects.none(),
        required=False,
        empty_label=_("Not in a meeting"),
    )
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)

    def __init__(self, *args, step: Transition, initiative, **kwargs):
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("version", initiative.version)
        super().__init__(*args, **kwargs)
        self.step = step
        if step.needs_comment:
            self.fields["comment"].required = True
            self.fields["comment"].label = _("Why (recorded with the decision)")
        candidates = move_candidates(step, initiative) if step.move != Move.STAY else []
        self.asks_forum = step.move == Move.UNIT_FORUM or len(candidates) > 1
        if self.asks_forum:
            self.fields["target_forum"].queryset = Forum.objects.filter(
                pk__in=[f.pk for f in candidates]
            ).order_by("name")
            self.fields["target_forum"].required = True
        else:
            del self.fields["target_forum"]
        self.fields["meeting"].queryset = Meeting.objects.filter(
            forum_id=initiative.forum_id
        ).order_by("-starts_at")


# -- PDSA cycles --------------------------------------------------------------------------------


class PDSACycleForm(forms.Form):
    """A cycle in one of the units the person runs cycles in; the measures offered are the
    chosen unit's (or, before one is chosen, those of any of their units)."""

    unit = forms.ModelChoiceField(label=_("Unit"), queryset=Unit.objects.none())
    measure = forms.ModelChoiceField(
        label=_("Measure watched"),
        queryset=Measure.objects.none(),
        required=False,
        empty_label=_("All of the unit's charts"),
    )
    plan = forms.CharField(label=_("Plan"), widget=forms.Textarea(attrs={"rows": 3}))
    do = forms.CharField(label=_("Do"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    study = forms.CharField(
        label=_("Study"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    act = forms.CharField(label=_("Act"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    start_date = forms.DateField(
        label=_("Start"), widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
    )
    end_date = forms.DateField(
        label=_("End"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        units = pdsa_units(user).select_related("department").order_by("name")
        self.fields["unit"].queryset = units
        chosen = self.data.get("unit") if self.is_bound else None
        chosen = chosen or (self.initial.get("unit") if self.initial else None)
        unit = units.filter(pk=chosen).first() if str(chosen or "").isdigit() else None
        if unit is None:
            only = list(units[:2])
            unit = only[0] if len(only) == 1 else None
            if unit is not None:
                self.fields["unit"].initial = unit.pk
        if unit is not None:
            measures = measures_applying_to_unit(unit)
        else:
            measures = Measure.objects.filter(
                Q(scope=Scope.DIVISION)
                | Q(scope=Scope.DEPARTMENT, department_id__in=units.values("department_id"))
                | Q(scope=Scope.UNIT, unit_id__in=units.values("pk"))
            )
        self.fields["measure"].queryset = measures.filter(active=True).order_by("name")
