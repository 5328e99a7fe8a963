"""The guide's Chinese edition: every English page ``docs/X.md`` has ``docs/X.zh.md`` beside it.

    .venv/bin/python scripts/translations.py check          # what the build checks
    .venv/bin/python scripts/translations.py stamp PAGE.zh.md  # after updating a translation
    .venv/bin/python scripts/translations.py ids PAGE.md     # the heading ids to keep

English is the source. A translation records, in its front matter, the hash of the English
page it translates (``source: <hash>``); when the English page changes, the hash no longer
matches and the build fails until the translation is brought up to date and stamped again.
A translation keeps its source's heading ids (``## 标题 {#the-english-id}``), so every link
to an anchor works in both languages, and its source's generated-table markers.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LANGUAGE = "zh"
# Not pages: hooks, theme overrides and templates live under docs/ too
SKIPPED = ("hooks", "overrides", "templates")

FRONT_MATTER = re.compile(r"\A---\n(.*?\n)---\n", re.DOTALL)
SOURCE = re.compile(r"^source: *([0-9a-f]+) *$", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
EXPLICIT_ID = re.compile(r"\{[^}]*#([A-Za-z0-9_:.-]+)[^}]*\}[ \t]*$")
MARKER = re.compile(r"^<!--\s*table:\s*([A-Za-z0-9_-]+)\s*-->", re.MULTILINE)
DIGEST_LENGTH = 16


def source_pages(docs: Path = DOCS) -> Iterator[Path]:
    """The English pages: every ``.md`` under docs/ that is not itself a translation."""
    for path in sorted(docs.rglob("*.md")):
        relative = path.relative_to(docs)
        if relative.parts[0] in SKIPPED or path.name.endswith(f".{LANGUAGE}.md"):
            continue
        yield path


def translation_of(page: Path) -> Path:
    return page.with_name(f"{page.stem}.{LANGUAGE}.md")


def digest(page: Path) -> str:
    return hashlib.sha256(page.read_bytes()).hexdigest()[:DIGEST_LENGTH]


def slugify(text: str) -> str:
    """MkDocs' heading ids (Python-Markdown's toc ``slugify``: ASCII, lower case, hyphens)."""
    from markdown.extensions.toc import slugify as toc_slugify

    return str(toc_slugify(text, "-"))


def heading_ids(markdown: str) -> list[str]:
    """Each heading's id as the toc extension makes it: ``{#id}`` when given, else the slug of
    its text, made unique with ``_1``, ``_2`` as the toc extension does."""
    body = FENCE.sub("", FRONT_MATTER.sub("", markdown))
    ids: list[str] = []
    for match in HEADING.finditer(body):
        text = match.group(2)
        explicit = EXPLICIT_ID.search(text)
        ident = explicit.group(1) if explicit else slugify(re.sub(r"\{[^}]*\}\s*$", "", text))
        if ident in ids:
            n = 1
            while f"{ident}_{n}" in ids:
                n += 1
            ident = f"{ident}_{n}"
        ids.append(ident)
    return ids


def problems(docs: Path = DOCS) -> list[str]:
    """Every page without a current translation, one line each."""
    found = []
    for page in source_pages(docs):
        name = page.relative_to(docs).as_posix()
        translated = translation_of(page)
        where = translated.relative_to(docs).as_posix()
        if not translated.exists():
            found.append(f"docs/{name}: no translation (docs/{where})")
            continue
        text = translated.read_text(encoding="utf-8")
        source = page.read_text(encoding="utf-8")
        front = FRONT_MATTER.match(text)
        recorded = SOURCE.search(front.group(1)) if front else None
        if recorded is None:
            found.append(f"docs/{where}: its front matter has no 'source: <hash>' line")
        elif recorded.group(1) != digest(page):
            found.append(
                f"docs/{where}: translates an older docs/{name} (source {recorded.group(1)}, "
                f"now {digest(page)}); update it, then run scripts/translations.py stamp"
            )
        missing = [i for i in heading_ids(source) if i not in heading_ids(text)]
        if missing:
            found.append(
                f"docs/{where}: headings without the English ids {', '.join(missing)} "
                "(write '## 标题 {#id}')"
            )
        markers = MARKER.findall(source)
        if MARKER.findall(text) != markers:
            found.append(f"docs/{where}: its table markers differ from the English page's")
    return found


def stamp(translated: Path) -> None:
    """Record the current hash of the English page in the translation's front matter."""
    name = translated.name.removesuffix(f".{LANGUAGE}.md")
    source = translated.with_name(f"{name}.md")
    text = translated.read_text(encoding="utf-8")
    line = f"source: {digest(source)}"
    front = FRONT_MATTER.match(text)
    if front is None:
        text = f"---\n{line}\n---\n\n{text}"
    elif SOURCE.search(front.group(1)):
        text = text[: front.start(1)] + SOURCE.sub(line, front.group(1)) + text[front.end(1) :]
    else:
        text = f"---\n{line}\n{front.group(1)}---\n{text[front.end() :]}"
    translated.write_text(text, encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] in ("stamp", "ids"):
        for name in argv[1:]:
            path = Path(name)
            if not path.is_file():
                print(f"{name}: no such file", file=sys.stderr)
                return 2
            if argv[0] == "stamp":
                stamp(path)
            else:
                print("\n".join(heading_ids(path.read_text(encoding="utf-8"))))
        return 0
    if argv == ["check"]:
        found = problems()
        print("\n".join(found) or "every page has a current translation")
        return 1 if found else 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
