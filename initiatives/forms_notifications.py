"""The e-mail settings form: how often, per forum one sits on and for other forums; language."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from forums.enums import EmailFrequency
from forums.models import Membership


class NotificationSettingsForm(forms.Form):
    """One choice per membership (``forum_<membership id>``), then the general ones."""

    email_frequency = forms.ChoiceField(
        label=_("Other forums"),
        choices=EmailFrequency.choices,
        help_text=_(
            "Decisions on initiatives you logged and answers to your support requests, "
            "from forums you do not sit on."
        ),
    )
    language = forms.ChoiceField(
        label=_("Language of e-mails"),
        choices=[("", _("The site's default")), *settings.LANGUAGES],
        required=False,
    )

    def __init__(self, *args, memberships: list[Membership], **kwargs):
        super().__init__(*args, **kwargs)
        self.memberships = memberships
        forum_fields = {}
        for membership in memberships:
            forum_fields[f"forum_{membership.pk}"] = forms.ChoiceField(
                label=membership.forum.name,
                choices=EmailFrequency.choices,
                initial=membership.email_frequency,
                help_text=membership.forum.get_kind_display(),
            )
        # The forums first, in the order given.
        self.fields = {**forum_fields, **self.fields}

    def forum_fields(self):
        return [self[name] for name in self.fields if name.startswith("forum_")]

    def general_fields(self):
        return [self[name] for name in self.fields if not name.startswith("forum_")]

    def frequencies(self) -> dict[int, str]:
        return {
            membership.pk: self.cleaned_data[f"forum_{membership.pk}"]
            for membership in self.memberships
        }
