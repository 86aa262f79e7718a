"""The dashboard filters in the URL: validated, so a hand-edited link gets a clear message."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from measures.enums import Frequency

from .panels import Filters


class FilterForm(forms.Form):
    grain = forms.ChoiceField(
        label=_("Grain"),
        required=False,
        choices=[("", _("Each measure's own")), *Frequency.choices],
    )
    start = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    compare = forms.ChoiceField(
        label=_("Compare with"),
        required=False,
        choices=[
            ("", _("Nothing")),
            ("department", _("The department")),
            ("division", _("The division")),
        ],
    )
    view = forms.ChoiceField(
        label=_("Show"),
        required=False,
        choices=[("charts", _("Charts")), ("table", _("Tables"))],
    )
    period = forms.DateField(label=_("Period"), required=False)

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            self.add_error("end", _("The end of the range lies before its start."))
        return data

    def filters(self) -> Filters:
        """The valid choices; a field with an error falls back to its default."""
        data = (
            self.cleaned_data
            if self.is_valid()
            else {
                k: v for k, v in getattr(self, "cleaned_data", {}).items() if k not in self.errors
            }
        )
        if "end" in self.errors:
            data.pop("start", None)
        period = data.get("period")
        return Filters(
            grain=data.get("grain") or "",
            start=data.get("start"),
            end=data.get("end"),
            compare=data.get("compare") or "",
            view=data.get("view") or "charts",
            period=period.isoformat() if period else "",
        )
