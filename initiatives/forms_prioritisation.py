"""Forms of the prioritisation pages: a criterion (the chair's), a member's scores.

They only carry what was typed: the services check it (``initiatives.prioritisation``), and
their refusals are put next to the field they concern.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .models import Criterion
from .prioritisation import HIGHEST, LOWEST


class CriterionForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    description = forms.CharField(
        label=_("What it means"),
        max_length=300,
        required=False,
        help_text=_("Shown to the members as they score."),
    )
    weight = forms.CharField(
        label=_("Weight"),
        max_length=10,
        help_text=_("How much it counts against the others: 0 or more, e.g. 1 or 1.5."),
        widget=forms.TextInput(attrs={"inputmode": "decimal", "size": 6}),
    )
    higher_is_better = forms.BooleanField(
        label=_("A higher score is better (untick for a cost, such as effort)"),
        required=False,
    )

    @classmethod
    def for_criterion(cls, criterion: Criterion, data=None) -> CriterionForm:
        return cls(
            data,
            prefix=f"c{criterion.pk}",
            initial={
                "name": criterion.name,
                "description": criterion.description,
                "weight": f"{criterion.weight.normalize():f}",
                "higher_is_better": criterion.higher_is_better,
            },
        )


def score_choices() -> list[tuple[str, str]]:
    return [("", _("Not scored")), *((str(v), str(v)) for v in range(LOWEST, HIGHEST + 1))]


class ScoreForm(forms.Form):
    """One radio group per active criterion of the forum (``criterion_<id>``), 1–5 or not
    scored. Any value is taken as typed: the service refuses a wrong one, naming it."""

    def __init__(
        self,
        data=None,
        *,
        criteria: Sequence[Criterion],
        saved: Mapping[int, int] | None = None,
    ):
        saved = saved or {}
        initial = {f"criterion_{c.pk}": str(saved[c.pk]) for c in criteria if c.pk in saved}
        super().__init__(data, initial=initial)
        self.criteria = list(criteria)
        for criterion in self.criteria:
            self.fields[f"criterion_{criterion.pk}"] = forms.CharField(
                label=criterion.name,
                required=False,
                help_text=criterion.description,
                widget=forms.RadioSelect(choices=score_choices()),
            )

    def values(self) -> dict[int, str]:
        """What was sent for each criterion (empty: not scored)."""
        return {c.pk: (self.data.get(f"criterion_{c.pk}") or "") for c in self.criteria}

    def groups(self):
        """(criterion, bound field) pairs, for the template's fieldsets."""
        return [(c, self[f"criterion_{c.pk}"]) for c in self.criteria]


def add_service_error(form: forms.Form, error: ValidationError) -> None:
    """Put a service's refusal next to the field it names, else above the form."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)
