"""Sorting names the way readers expect in their language.

Python compares code points, which puts Ä (U+00C4) before Å (U+00C5) and every accented
letter after z. Swedish alphabetical order ends … x, y, z, å, ä, ö (Svenska Akademiens
ordlista), and treats other accents as the plain letter (é as e, ü as y in SAOL; as u here,
close enough for unit names). In English, å, ä and ö sort as a and o.
"""

from __future__ import annotations

import unicodedata

from django.utils.translation import get_language

# Characters that sort after "z" in ASCII, in Swedish order.
_SWEDISH_LAST = str.maketrans({"å": "{", "ä": "|", "ö": "}", "æ": "|", "ø": "}"})


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def name_key(text: str, language: str | None = None) -> str:
    """A sort key for a name in the reader's language (``language`` defaults to the active
    one)."""
    language = (language or get_language() or "en").split("-")[0]
    folded = text.casefold()
    if language == "sv":
        return _plain(folded.translate(_SWEDISH_LAST))
    return _plain(folded)
