from django.shortcuts import render

from units.selectors import organisation_tree, units_for_user


def home(request):
    """The landing page: the user's own units first, then the whole organisation."""
    context = {
        "my_units": units_for_user(request.user),
        "departments": organisation_tree(),
    }
    return render(request, "dashboards/home.html", context)
