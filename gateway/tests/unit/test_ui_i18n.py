"""The UI's English switch is complete: every Russian text a template or a page module wraps in
``_()`` has an English entry, and the translator formats and falls back as documented."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.ui.i18n import catalogue, translator

GATEWAY = Path(__file__).resolve().parents[2]
# _("text") or _('text') with a literal first argument (the only form the UI uses).
WRAPPED = re.compile(r"""\b_\(\s*(?P<q>["'])(?P<text>(?:(?!(?P=q)).)+)(?P=q)""")
CYRILLIC = re.compile(r"[А-Яа-яЁё]")


def wrapped_texts() -> dict[str, str]:
    found: dict[str, str] = {}
    sources = list((GATEWAY / "templates" / "app").rglob("*.html"))
    sources += list((GATEWAY / "ui").rglob("*.py"))
    for path in sources:
        for match in WRAPPED.finditer(path.read_text(encoding="utf-8")):
            text = match.group("text")
            if CYRILLIC.search(text):
                found.setdefault(text, str(path.relative_to(GATEWAY)))
    return found


def test_every_wrapped_russian_text_has_an_english_translation():
    english = catalogue("en")
    missing = {text: where for text, where in wrapped_texts().items() if text not in english}
    assert not missing, "add to gateway/ui/locale/en/*.json: " + repr(missing)


def test_english_entries_are_not_russian_left_untranslated():
    untranslated = [ru for ru, en in catalogue("en").items() if CYRILLIC.search(en)]
    assert not untranslated


def test_the_translator_formats_and_falls_back_to_russian():
    en, ru = translator("en"), translator("ru")
    assert en("Клиенты") == "Clients"
    assert ru("Клиенты") == "Клиенты"
    assert en("Текст, которого нет в каталоге") == "Текст, которого нет в каталоге"
    assert ru("Задач: {n}", n=3) == "Задач: 3"
