"""Edge: read ``data/*.yaml``, check them against ``data/schema/*.json``, build the catalogue.

The CLI, the site build and the scripts all load the catalogue through :func:`load_catalogue`,
so a bad entry is reported the same way everywhere: file, line, entry id, field, what was
expected. This module does I/O and needs PyYAML and jsonschema (the ``cli`` extra); the
estimator modules never import it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from calc._errors import CatalogueError
from calc.catalogue import (
    GPUS_FILE,
    MODELS_FILE,
    NAMES_FILE,
    PRECISIONS_FILE,
    Catalogue,
    build_catalogue,
    check_catalogue,
)
from calc.inputs import measurement_schema
from calc.records import record

if TYPE_CHECKING:
    from calc.measurements import Comparison, Measurement

FILES = {
    "models": MODELS_FILE,
    "precisions": PRECISIONS_FILE,
    "gpus": GPUS_FILE,
    "names": NAMES_FILE,
    "measurements": "data/measurements.yaml",  # calc.measurements.MEASUREMENTS_FILE
}
DATA_ENV = "VRAM_GUIDE_DATA"


def default_data_dir() -> Path:
    """``$VRAM_GUIDE_DATA`` if set, else the repository's ``data/`` next to this package."""
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "data"


@record
class Document:
    name: str  # "models", "precisions" or "gpus"
    label: str  # how errors name the file, e.g. "data/models.yaml"
    data: Any
    lines: dict[tuple[str | int, ...], int]

    def line(self, path: tuple[str | int, ...]) -> int | None:
        """The line of the deepest node on ``path`` that the file has."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get(())


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - depends on the installation
        raise CatalogueError(
            "reading the catalogue needs PyYAML: pip install -e '.[cli]'"
        ) from None
    return yaml


def read_document(name: str, path: Path, label: str) -> Document:
    yaml = _yaml()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogueError(f"cannot read: {error.strerror}", file=label) from None
    # libyaml's loader where PyYAML was built with it (13x faster), else the pure-Python one;
    # one parse gives both the nodes (for line numbers) and the data built from them
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    lines: dict[tuple[str | int, ...], int] = {}
    try:
        node = loader.get_single_node()
        if node is not None:  # before constructing: an alias bomb never gets built
            _record_lines(node, (), lines, yaml, label, set())
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error)
        raise CatalogueError(
            f"not valid YAML: {problem}",
            file=label,
            line=mark.line + 1 if mark is not None else None,
        ) from None
    finally:
        loader.dispose()
    return Document(name=name, label=label, data=data, lines=lines)


def _record_lines(
    node: Any, path: tuple[str | int, ...], out: dict, yaml: Any, label: str, seen: set[int]
) -> None:
    """Each node's line by its path; a node met twice is an alias (*name), refused, as is a
    key given twice in one mapping (YAML would keep the last one silently)."""
    line = node.start_mark.line + 1
    if id(node) in seen and isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        raise CatalogueError("YAML aliases (*name) are not allowed in data files", file=label,
                             line=line)  # fmt: skip
    seen.add(id(node))
    out[path] = line
    if isinstance(node, yaml.MappingNode):
        keys: dict[object, int] = {}
        for key, value in node.value:
            key_line = key.start_mark.line + 1
            if key.value in keys:
                raise CatalogueError(
                    f"key {key.value!r} given twice in one entry (first on line {keys[key.value]})",
                    file=label,
                    line=key_line,
                )
            keys[key.value] = key_line
            child = (*path, key.value)
            out[child] = key_line
            _record_lines(value, child, out, yaml, label, seen)
            out[child] = key_line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, index), out, yaml, label, seen)


def load_schema(data_dir: Path, name: str) -> dict[str, Any]:
    """The file's schema; the measurements' inputs come from the input table."""
    path = data_dir / "schema" / f"{name}.schema.json"
    try:
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CatalogueError(f"cannot read schema: {error}", file=str(path)) from None
    if name == "measurements":
        loaded["items"]["properties"].update(measurement_schema())
        loaded["items"]["additionalProperties"] = False
    return loaded


def schema_problems(document: Document, schema: dict[str, Any]) -> list[CatalogueError]:
    try:
        from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - depends on the installation
        raise CatalogueError(
            "checking the catalogue needs jsonschema: pip install -e '.[cli]'"
        ) from None
    problems = []
    validator = Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(document.data), key=lambda e: list(e.path)):
        path = tuple(error.absolute_path)
        entry = ""
        if path and isinstance(path[0], int) and isinstance(document.data, list):
            item = document.data[path[0]]
            entry = str(item.get("id", f"#{path[0] + 1}")) if isinstance(item, dict) else ""
        field = ".".join(str(p) for p in path[1:])
        problems.append(
            CatalogueError(
                _schema_message(error),
                file=document.label,
                line=document.line(path),
                entry=entry,
                field=field,
            )
        )
    return problems


def _schema_message(error: Any) -> str:
    message = str(error.message)
    if error.validator == "required":
        return message.replace("is a required property", "is missing (required)")
    if error.validator == "additionalProperties":
        return message + " (check the spelling against the schema)"
    if error.validator == "type":
        return f"expected {error.validator_value}, got {error.instance!r}"
    return message


def read_documents(
    data_dir: Path | None = None, names: tuple[str, ...] = tuple(FILES)
) -> dict[str, Document]:
    root = data_dir or default_data_dir()
    return {name: read_document(name, root / Path(FILES[name]).name, FILES[name]) for name in names}


CATALOGUE_FILES = ("models", "precisions", "gpus", "names")


def catalogue_problems(data_dir: Path | None = None) -> list[CatalogueError]:
    """Every problem in every data file: schema first, then semantic rules."""
    return _read_and_check(data_dir or default_data_dir())[1]


def _read_and_check(
    root: Path, *, measurements: bool = True, comparisons: dict[str, Comparison] | None = None
) -> tuple[dict[str, Document], list[CatalogueError]]:
    """The documents and every problem in them; without ``measurements`` only the catalogue's
    four files (what an estimate needs: the measurements' own check re-estimates every case,
    and keeps each comparison in ``comparisons``)."""
    documents = read_documents(root, tuple(FILES) if measurements else CATALOGUE_FILES)
    problems = []
    for name, document in documents.items():
        problems += schema_problems(document, load_schema(root, name))
    shapeless = any(
        not isinstance(d.data, list) or not all(isinstance(e, dict) for e in d.data)
        for d in documents.values()
    )
    if shapeless:  # a file or an entry of the wrong shape: the schema has said so
        return documents, problems
    locate = _locator(documents)
    # The semantic rules run even when the schemas found something, so that a contributor
    # sees every problem at once; the measurements are checked against a sound catalogue only.
    problems += check_catalogue(
        documents["models"].data,
        documents["precisions"].data,
        documents["gpus"].data,
        names=documents["names"].data,
        locate=locate,
    )
    if problems or not measurements:
        return documents, sorted(problems, key=lambda p: (p.file, p.line or 0))
    catalogue = build_catalogue(
        documents["models"].data,
        documents["precisions"].data,
        documents["gpus"].data,
        names=documents["names"].data,
    )
    from calc.measurements import check_measurements  # only checks need it: 20 ms to import

    return documents, check_measurements(
        documents["measurements"].data, catalogue, locate=locate, comparisons=comparisons
    )


def _locator(documents: dict[str, Document]) -> Callable[[str, tuple[str | int, ...]], int | None]:
    by_label = {d.label: d for d in documents.values()}

    def locate(file: str, path: tuple[str | int, ...]) -> int | None:
        document = by_label.get(file)
        return document.line(path) if document else None

    return locate


def load_catalogue(data_dir: Path | None = None) -> Catalogue:
    """The catalogue, or the first problem as a :class:`CatalogueError`. The measurements are
    not read: ``scripts/check_data.py`` and the tests check them (and CI runs both).

    Files that passed their checks once are kept as JSON in the cache (``$VRAM_GUIDE_CACHE``,
    else ``~/.cache/vram-guide``) under a fingerprint of every file the checks depend on, so a
    second call skips YAML and the schemas: 50 ms instead of 700."""
    root = data_dir or default_data_dir()
    fingerprint = _fingerprint(root)
    cached = _read_cache(fingerprint)
    if cached is not None:
        return build_catalogue(
            cached["models"],
            cached["precisions"],
            cached["gpus"],
            names=cached["names"],
            checked=True,
        )
    documents, problems = _read_and_check(root, measurements=False)
    if problems:
        raise problems[0]
    _write_cache(fingerprint, {name: documents[name].data for name in CATALOGUE_FILES})
    return build_catalogue(
        documents["models"].data,
        documents["precisions"].data,
        documents["gpus"].data,
        names=documents["names"].data,
        locate=_locator(documents),
    )


CACHE_ENV = "VRAM_GUIDE_CACHE"


def cache_dir() -> Path:
    """Where the command line and the site build keep what they computed from the data:
    ``$VRAM_GUIDE_CACHE``, else ``$XDG_CACHE_HOME/vram-guide`` or ``~/.cache/vram-guide``."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vram-guide"


def _fingerprint(root: Path) -> str:
    """Path, size and modification time of the data files, their schemas and the package's
    modules (the checks live there): any change makes a new key."""
    package = Path(__file__).resolve().parent
    paths = [root / Path(FILES[name]).name for name in CATALOGUE_FILES]
    paths += [root / "schema" / f"{name}.schema.json" for name in CATALOGUE_FILES]
    paths += sorted(package.rglob("*.py"))
    parts = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            parts.append(f"{path}:missing")
            continue
        parts.append(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _read_cache(fingerprint: str) -> dict[str, Any] | None:
    path = cache_dir() / f"catalogue-{fingerprint}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # no cache, or a damaged one: read the files
    if not isinstance(data, dict) or any(
        not isinstance(data.get(n), list) for n in CATALOGUE_FILES
    ):
        return None
    return data


KEPT = 4  # cached versions kept: two checkouts (or a test's copy of data/) do not evict each other


def prune_cache(folder: Path, pattern: str) -> None:
    """Remove all but the KEPT - 1 newest entries matching ``pattern`` (room for one more)."""
    entries = sorted(folder.glob(pattern), key=_mtime, reverse=True)
    for old in entries[KEPT - 1 :]:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _write_cache(fingerprint: str, data: dict[str, Any]) -> None:
    """Best effort: a cache that cannot be written (a read-only home) costs only time."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        prune_cache(folder, "catalogue-*.json")
        temporary = folder / f".catalogue-{fingerprint}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(data), encoding="utf-8")
        temporary.replace(folder / f"catalogue-{fingerprint}.json")
    except OSError:
        pass


def load_measurements(data_dir: Path | None = None) -> tuple[Measurement, ...]:
    """The measurements, after every data file has passed its checks."""
    from calc.measurements import parse_measurements

    documents, problems = _read_and_check(data_dir or default_data_dir())
    if problems:
        raise problems[0]
    return parse_measurements(documents["measurements"].data)


@record
class Checked:
    """Every data file read and checked once: what the site build needs."""

    documents: Mapping[str, Any]  # the raw data of each file, by name
    catalogue: Catalogue
    measurements: tuple[Measurement, ...]
    comparisons: Mapping[str, Comparison]  # each modelled measurement's, by id


def load_checked(data_dir: Path | None = None) -> Checked:
    """Every data file, checked (the first problem raised as a :class:`CatalogueError`), with
    the catalogue, the measurements and their comparisons with the estimates."""
    from calc.measurements import parse_measurements

    root = data_dir or default_data_dir()
    comparisons: dict[str, Comparison] = {}
    documents, problems = _read_and_check(root, comparisons=comparisons)
    if problems:
        raise problems[0]
    data = {name: document.data for name, document in documents.items()}
    catalogue = build_catalogue(
        data["models"], data["precisions"], data["gpus"], names=data["names"], checked=True
    )
    return Checked(data, catalogue, parse_measurements(data["measurements"]), comparisons)


def catalogue_documents(data_dir: Path | None = None) -> dict[str, Any]:
    """The raw documents, for the browser's JSON copy of the catalogue."""
    return {name: doc.data for name, doc in read_documents(data_dir).items()}
