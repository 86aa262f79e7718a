"""The vendored front-end files are served from our own origin, compressed, cached for good."""

import re

import pytest
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.management import call_command
from django.http import HttpResponse
from django.test import RequestFactory, override_settings
from django.utils.functional import empty

MANIFEST = "whitenoise.storage.CompressedManifestStaticFilesStorage"


@pytest.fixture
def collected(tmp_path, settings):
    """collectstatic as the Dockerfile runs it, into a folder of this test's own."""
    root = tmp_path / "static"
    with override_settings(
        STATIC_ROOT=root,
        WHITENOISE_USE_FINDERS=False,
        STORAGES={**settings.STORAGES, "staticfiles": {"BACKEND": MANIFEST}},
    ):
        staticfiles_storage._wrapped = empty
        call_command("collectstatic", interactive=False, verbosity=0)
        yield root
    staticfiles_storage._wrapped = empty


def _serve(path: str, **headers):
    from whitenoise.middleware import WhiteNoiseMiddleware

    middleware = WhiteNoiseMiddleware(lambda request: HttpResponse(status=404))
    return middleware(RequestFactory().get(path, **headers))


def test_plotly_is_served_hashed_gzipped_and_cached_for_a_year(collected):
    url = staticfiles_storage.url("vendor/plotly/plotly-basic.min.js")
    assert re.search(r"plotly-basic\.min\.[0-9a-f]{12}\.js$", url), url
    response = _serve(url, HTTP_ACCEPT_ENCODING="gzip")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert "immutable" in response["Cache-Control"]
    assert int(re.search(r"max-age=(\d+)", response["Cache-Control"]).group(1)) >= 365 * 86400
    # Compressed to under half: 1.2 MB of plotly.js must not cross a hospital network as is.
    assert (
        int(response["Content-Length"])
        < (collected / "vendor/plotly/plotly-basic.min.js").stat().st_size / 2
    )


def test_the_dashboards_link_no_other_origin(client, org):
    client.force_login(org.people["clinician"])
    body = client.get(f"/units/{org.a1.code}/").content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', body)
    assert sources
    foreign = [s for s in sources if re.match(r"^(https?:)?//", s)]
    assert foreign == []
    assert any("vendor/plotly/plotly-basic.min" in s for s in sources)
    assert any("vendor/plotly/plotly.css" in s for s in sources)
