"""Forms of the meeting pages; they only check shapes, the services decide."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _

from forums.models import Meeting

_LOCAL = "%Y-%m-%dT%H:%M"


class MeetingForm(forms.Form):
    """When and where a meeting is, who was there, its minutes (``version``: what was read)."""

    starts_at = forms.DateTimeField(
        label=_("Starts"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=_LOCAL),
        input_formats=[_LOCAL, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
    )
    location = forms.CharField(
        label=_("Place"),
        required=False,
        max_length=Meeting._meta.get_field("location").max_length,
    )
    present = forms.ModelMultipleChoiceField(
        label=_("Present"),
        queryset=get_user_model().objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    minutes = forms.CharField(
        label=_("Minutes"), required=False, widget=forms.Textarea(attrs={"rows": 12})
    )
    version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=0)

    def __init__(self, *args, members=(), recorded=(), **kwargs):
        """``members``: the forum's memberships, in the order shown; ``recorded``: the users
        recorded as present (those who have left the forum since stay choosable)."""
        super().__init__(*args, **kwargs)
        choices = [(m.user_id, f"{_name(m.user)} ({m.get_role_display()})") for m in members]
        listed = {pk for pk, _label in choices}
        choices += [(u.pk, _name(u)) for u in recorded if u.pk not in listed]
        field = self.fields["present"]
        field.queryset = get_user_model().objects.filter(pk__in=[pk for pk, _l in choices])
        field.choices = choices


def _name(user) -> str:
    return user.get_full_name() or user.get_username()


class AgendaItemForm(forms.Form):
    title = forms.CharField(label=_("Item"), max_length=300)
    notes = forms.CharField(
        label=_("Notes"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    digest = forms.CharField(widget=forms.HiddenInput, required=False)


class AgendaMoveForm(forms.Form):
    direction = forms.ChoiceField(choices=[("up", _("Up")), ("down", _("Down"))], required=False)
    position = forms.IntegerField(min_value=1, required=False)
