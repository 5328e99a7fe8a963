"""The guide's words in other languages: ``docs/i18n/<language>.yaml``, English text to its
translation, for what the build writes (generated tables and model pages) and for the
calculator (its interface, the estimator's notes and the input table's labels).

The English text is the key, as gettext does it: a template says ``{{ _("Weights, GiB") }}``
and the English build prints it as is. The Chinese build fails on a template string with no
translation (:class:`MissingTranslation`); text that comes from the data files (a model's note,
a source's description) is translated where the catalogue has it and shown in English where it
does not, so that a pull request adding a model needs no Chinese.

Messages with values use ``%(name)s`` placeholders; :class:`Text` carries such a message and
its values from the table modules to the templates, which translate it with ``| t``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CATALOGUES = ROOT / "docs" / "i18n"
DEFAULT_LANGUAGE = "en"
# What each section of a catalogue holds; all but "data" must be complete
SECTIONS = ("pages", "data", "calculator", "estimator", "inputs")
PLACEHOLDER = re.compile(r"%\((\w+)\)s|\{(\w+)\}")


class MissingTranslation(LookupError):
    """A template's text has no translation in the language being built."""


@dataclass(frozen=True)
class Text:
    """A message with ``%(name)s`` placeholders and the values to put in them."""

    message: str
    values: Mapping[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message % dict(self.values) if self.values else self.message


def text(message: str, **values: object) -> Text:
    return Text(message, values)


def languages(folder: Path = CATALOGUES) -> list[str]:
    """The translations there are catalogues for."""
    return sorted(path.stem for path in folder.glob("*.yaml"))


def browser_json(language: str, folder: Path = CATALOGUES) -> bytes:
    """The calculator's words in ``language``, as the page loads them."""
    words = Messages(language, folder).browser()
    return json.dumps(words, ensure_ascii=False, sort_keys=True).encode()


def read_catalogue(language: str, folder: Path = CATALOGUES) -> dict[str, dict[str, str]]:
    """A language's catalogue by section; English needs none."""
    if language == DEFAULT_LANGUAGE:
        return {section: {} for section in SECTIONS}
    import yaml

    path = folder / f"{language}.yaml"
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise MissingTranslation(f"{path}: cannot be read: {error}") from None
    problems = catalogue_problems(document, path)
    if problems:
        raise MissingTranslation("\n".join(problems))
    return {section: dict(document.get(section) or {}) for section in SECTIONS}


def catalogue_problems(document: object, path: Path) -> list[str]:
    """Each entry a string to a string, with the same placeholders on both sides."""
    if not isinstance(document, dict):
        return [f"{path}: expected a mapping of sections ({', '.join(SECTIONS)})"]
    found = [f"{path}: unknown section {key!r}" for key in document if key not in SECTIONS]
    for section, entries in document.items():
        if section not in SECTIONS:
            continue
        if not isinstance(entries, dict):
            found.append(f"{path}: {section}: expected a mapping of English to translation")
            continue
        for english, translated in entries.items():
            if not isinstance(english, str) or not isinstance(translated, str):
                found.append(f"{path}: {section}: {english!r}: expected text to text")
            elif sorted(PLACEHOLDER.findall(english)) != sorted(PLACEHOLDER.findall(translated)):
                found.append(
                    f"{path}: {section}: {english!r}: the translation must keep the "
                    "placeholders " + ", ".join(m.group(0) for m in PLACEHOLDER.finditer(english))
                )
    return found


class Messages:
    """Translation for one language: strict for the templates' own text, lenient for data."""

    def __init__(self, language: str = DEFAULT_LANGUAGE, folder: Path = CATALOGUES) -> None:
        self.language = language
        self.catalogue = read_catalogue(language, folder)
        self.untranslated: set[str] = set()  # data text shown in English

    @property
    def english(self) -> bool:
        return self.language == DEFAULT_LANGUAGE

    def gettext(self, message: str) -> str:
        """A template's own text (``_("...")``): missing is an error."""
        if self.english:
            return message
        for section in ("pages", "estimator"):
            if message in self.catalogue[section]:
                return self.catalogue[section][message]
        raise MissingTranslation(
            f"docs/i18n/{self.language}.yaml: no translation for {message!r} (add it under 'pages')"
        )

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.gettext(singular if n == 1 else plural)

    def translate(self, value: Any) -> str:
        """``| t``: a :class:`Text` (strict, as the templates' text) or data text (lenient)."""
        if isinstance(value, Text):
            return str(self.gettext(value.message) % dict(value.values))
        text = str(value)
        if self.english:
            return text
        for section in ("data", "inputs", "estimator"):
            if text in self.catalogue[section]:
                return self.catalogue[section][text]
        self.untranslated.add(text)
        return text

    def browser(self) -> dict[str, dict[str, str]]:
        """What the calculator needs: its interface, the estimator's notes, the inputs."""
        return {s: self.catalogue[s] for s in ("calculator", "estimator", "inputs")}
