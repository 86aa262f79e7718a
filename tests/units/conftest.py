import pytest


@pytest.fixture(autouse=True)
def _static_files(settings):
    """Pages render ``{% static %}`` without the manifest (and folder) ``collectstatic`` makes."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.STATIC_ROOT = None
