"""The web UI's languages: Russian is the source language, English a translation.

Templates and page code write the Russian text people see and wrap it: ``{{ _("Клиенты") }}`` or
``_("Клиенты")`` (``_`` comes with the page's context). An English catalogue maps the Russian
text to the English one; a missing entry shows the Russian text (never a key), and a unit test
lists entries used in templates but missing from the catalogue.

Catalogues are JSON files under ``gateway/ui/locale/<lang>/``, one per area of the UI (so people
working on different pages never edit the same file); all files of a language are merged.
Placeholders use ``str.format``: ``_("Задач: {n}", n=3)``.

The language is the ``crm_lang`` cookie (set by ``/lang/<code>``), else the browser's
``Accept-Language``, else Russian.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

LANGUAGES = ("ru", "en")
DEFAULT_LANGUAGE = "ru"
LANG_COOKIE = "crm_lang"
LOCALE_DIR = Path(__file__).parent / "locale"


@cache
def catalogue(lang: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    folder = LOCALE_DIR / lang
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            merged.update(json.loads(path.read_text(encoding="utf-8")))
    return merged


def language_of(request) -> str:
    """The language a request asks for (cookie, then Accept-Language), one of LANGUAGES."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    best = request.accept_languages.best_match(LANGUAGES) if request else None
    return best or DEFAULT_LANGUAGE


def translator(lang: str):
    """``_(text, **values)`` for one language."""
    table = catalogue(lang) if lang != DEFAULT_LANGUAGE else {}

    def _(text: str, **values) -> str:
        translated = table.get(text, text)
        return translated.format(**values) if values else translated

    return _
