"""Forms of scale-up: the board's plan, a department's spread, one unit's adoption."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from forums.models import Meeting
from units.models import Unit

from .enums import AdoptionState
from .forms import MeetingChoiceField
from .models import Adoption, Initiative
from .scale_up import ADOPTION_MOVES
from .selectors_scale_up import department_target_units, plan_target_units

_DATE = {"attrs": {"type": "date"}, "format": "%Y-%m-%d"}


class UnitChoiceField(forms.ModelMultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def label_from_instance(self, obj: Unit) -> str:
        return f"{obj.name} ({obj.code})"


class _SpreadForm(forms.Form):
    units = UnitChoiceField(label=_("Units that are to adopt it"), queryset=Unit.objects.none())
    comment = forms.CharField(
        label=_("Comment"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    meeting = MeetingChoiceField(
        label=_("Decided in the meeting"),
        queryset=Meeting.objects.none(),
        required=False,
        empty_label=_("Not in a meeting"),
    )
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)

    def __init__(self, *args, initiative: Initiative, units, **kwargs):
        kwargs.setdefault("initial", {})
        kwargs["initial"].setdefault("version", initiative.version)
        super().__init__(*args, **kwargs)
        self.initiative = initiative
        self.fields["units"].queryset = units
        self.fields["meeting"].queryset = Meeting.objects.filter(
            forum_id=initiative.forum_id
        ).order_by("-starts_at")

    def unit_groups(self) -> list[tuple[str, list]]:
        """The unit checkboxes grouped by department (for the fieldsets)."""
        names = {u.pk: u.department.name for u in self.fields["units"].queryset}
        groups: dict[str, list] = {}
        for box in self["units"]:
            groups.setdefault(names.get(int(str(box.data["value"])), ""), []).append(box)
        return list(groups.items())


class ScaleUpPlanForm(_SpreadForm):
    """The board's scale-up plan: what spreads where, by when, and to which units."""

    scope = forms.CharField(
        label=_("Scope"),
        help_text=_("What is to spread, and where: e.g. every in-patient ward within a year."),
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    deadline = forms.DateField(label=_("Deadline"), widget=forms.DateInput(**_DATE))
    field_order = ["scope", "deadline", "units", "comment", "meeting", "version"]

    def __init__(self, *args, initiative: Initiative, **kwargs):
        super().__init__(
            *args, initiative=initiative, units=plan_target_units(initiative), **kwargs
        )


class DepartmentSpreadForm(_SpreadForm):
    """A department's spread: which of its units are to adopt it, by when, and why."""

    due_date = forms.DateField(label=_("Due by"), required=False, widget=forms.DateInput(**_DATE))
    field_order = ["units", "due_date", "comment", "meeting", "version"]

    def __init__(self, *args, initiative: Initiative, **kwargs):
        super().__init__(
            *args, initiative=initiative, units=department_target_units(initiative), **kwargs
        )
        self.fields["comment"].required = True
        self.fields["comment"].label = _("Why (recorded with the decision)")


class AdoptionForm(forms.Form):
    """One unit's adoption: where it is now, how the unit adapted it (or why it declined)."""

    state = forms.ChoiceField(label=_("State"))
    adaptation = forms.CharField(
        label=_("How the unit adapted it (or why it declined)"),
        help_text=_("Translation, not copying: what the unit changed to make it fit."),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
    )
    adopted_on = forms.DateField(
        label=_("Adopted on"), required=False, widget=forms.DateInput(**_DATE)
    )
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=0)

    def __init__(self, *args, adoption: Adoption, **kwargs):
        kwargs.setdefault(
            "initial",
            {
                "state": adoption.state,
                "adaptation": adoption.adaptation,
                "adopted_on": adoption.adopted_on,
                "version": adoption.version,
            },
        )
        kwargs.setdefault("auto_id", f"id_adoption{adoption.pk}_%s")
        super().__init__(*args, **kwargs)
        allowed = ADOPTION_MOVES[adoption.state]
        self.fields["state"].choices = [
            (state.value, state.label) for state in AdoptionState if state in allowed
        ]
