from django import forms
from django.utils.translation import gettext_lazy as _


class UploadForm(forms.Form):
    file = forms.FileField(
        label=_("CSV file"),
        help_text=_(
            "UTF-8 or Windows-1252, comma or semicolon separated. Patient-level rows "
            "(measure_code, unit_code, date, value[, subject_key]) or pre-aggregated rows "
            "(measure_code, unit_code, period_start, numerator, denominator)."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.txt,text/csv"}),
    )
