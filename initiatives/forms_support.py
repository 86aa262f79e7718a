"""Forms of the support requests and attachments (pages only: the API has serializers)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from .attachments import ACCEPT
from .enums import SupportKind
from .support import MAX_TEXT


class SupportRequestForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("Help with"), choices=SupportKind.choices, initial=SupportKind.DATA
    )
    description = forms.CharField(
        label=_("What is needed"),
        max_length=MAX_TEXT,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Data (a measure, an extract), IT (a form, a system) or improvement science."),
    )


class SupportAnswerForm(forms.Form):
    answer = forms.CharField(
        label=_("Answer"),
        max_length=MAX_TEXT,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("What was done, or where to find it. The one who asked sees it."),
    )


class AttachmentForm(forms.Form):
    file = forms.FileField(
        label=_("File"),
        widget=forms.ClearableFileInput(attrs={"accept": ACCEPT}),
        help_text=_(
            "PDF, images, Word, Excel, PowerPoint, OpenDocument, text or CSV; at most %(max)s."
        ),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        largest = filesizeformat(settings.LHS_ATTACHMENT_MAX_BYTES)
        self.fields["file"].help_text = self.fields["file"].help_text % {"max": largest}
