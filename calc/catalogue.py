"""The catalogue (models, number formats, GPUs) built from plain data, and name look-up.

Callers hand in the parsed documents (from YAML at the CLI and build, from JSON in the browser)
and, optionally, a locator that maps a path inside a document to its line, so that errors can
name file, line, entry and field. This module reads no file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from functools import cached_property
from typing import Any

from calc._errors import CatalogueError, ConfigError, UnknownNameError
from calc.architecture import Architecture, parse_config
from calc.checkpoint import Checkpoint
from calc.formats import (
    MIX_CONDITIONS,
    SCOPES,
    MixRule,
    StorageType,
    WeightFormat,
    required_storage_ids,
)
from calc.records import record, replace
from calc.units import MIB

Path = tuple[str | int, ...]
Locator = Callable[[str, Path], "int | None"]

MODELS_FILE = "data/models.yaml"
PRECISIONS_FILE = "data/precisions.yaml"
GPUS_FILE = "data/gpus.yaml"
NAMES_FILE = "data/names.yaml"


def _no_lines(_file: str, _path: Path) -> int | None:
    return None


@record
class Model:
    id: str
    name: str
    family: str
    hf_repo: str
    config_source: str
    params_published: int
    params_source: str
    active_params_published: int | None
    config: Mapping[str, Any] = field(repr=False)

    @cached_property
    def arch(self) -> Architecture:
        """The config read on first use: an estimate needs one model's, not 128."""
        return parse_config(self.config, where=f"model {self.id}: config")


@record
class Name:
    """A name people type (an Ollama tag, a Hugging Face upload) for a catalogue model."""

    name: str
    model: str
    weights: str | None  # the format of the file behind the name, where it is one
    note: str
    source: str
    also: tuple[str, ...] = ()


@record
class Precision:
    """One row of the number-format table; also the source of a storage type."""

    id: str
    name: str
    kind: str
    family: str
    bits_per_weight: float
    source: str
    notes: str = ""
    bits: int | None = None
    sign_bits: int | None = None
    exponent_bits: int | None = None
    mantissa_bits: int | None = None
    max_normal: float | None = None
    min_normal: float | None = None
    block_size: int | None = None
    block_bytes: int | None = None
    scope: str | None = None  # set for formats a reader can pick for weights
    kv_cache: bool = False  # may the KV cache use it?
    aliases: tuple[str, ...] = ()
    mix_base: str | None = None


@record
class GPU:
    id: str
    name: str
    vendor: str
    aliases: tuple[str, ...]
    memory_bytes: int
    memory_gb: float
    bandwidth_gb_s: float
    source: str
    unified_memory: bool = False
    usable_fraction: float | None = None
    nvidia_smi_total_mib: int | None = None
    architecture: str = ""
    tflops: tuple[tuple[str, float], ...] = ()  # dense peak by data type (fp16, int8 ...)

    def unified_share(self, memory_bytes: int) -> int:
        """What the GPU may take of a unified-memory machine with ``memory_bytes``: macOS wires
        2/3 of the memory for the GPU up to 36 GiB and 3/4 above (the limits llama.cpp logs
        quote, see data/gpus.yaml's head); other vendors' default share is the entry's."""
        if self.vendor == "Apple":
            share = 2 / 3 if memory_bytes <= 36 * 2**30 else 3 / 4
        else:
            share = self.usable_fraction or 1.0
        return int(memory_bytes * share)

    @property
    def usable_bytes(self) -> int:
        """What software can allocate: nvidia-smi's total where one was read (the driver keeps
        some memory back), else the GPU's share of unified memory, else the capacity."""
        if self.nvidia_smi_total_mib is not None:
            return self.nvidia_smi_total_mib * MIB
        if self.usable_fraction is None:
            return self.memory_bytes
        return int(self.memory_bytes * self.usable_fraction)


@record
class Catalogue:
    models: Mapping[str, Model]
    precisions: Mapping[str, Precision]
    storage_types: Mapping[str, StorageType]
    weight_formats: Mapping[str, WeightFormat]
    gpus: Mapping[str, GPU]
    names: Mapping[str, Name] = field(default_factory=dict)
    # Weight layouts computed over this catalogue (calc.estimate.LayoutMemo): every estimate
    # that names no memo of its own shares it, so the site build lays out each (model, format)
    # once rather than once per table cell
    layouts: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    # and fine-tuning's training states (calc.finetune.StateMemo), likewise
    training_states: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def model(self, name: str) -> Model:
        """A model by its id, display name, Hugging Face id (with or without huggingface.co/
        or hf.co/ in front), or a name from data/names.yaml such as an Ollama tag."""
        return self.models[_lookup("model", _repo(name), self._index["model"], _plain)]

    def name_entry(self, name: str) -> Name | None:
        """The data/names.yaml entry ``name`` is, if it is one (so its file format applies)."""
        entry = self.names.get(self._index["name"].get(_plain(_repo(name)), ""))
        if entry is None or self._index["model"].get(_plain(_repo(name))) != entry.model:
            return None  # a model id wins over a name spelled the same
        return entry

    def weight_format(self, name: str) -> WeightFormat:
        return self.weight_formats[_lookup("weight format", name, self._index["weights"], _plain)]

    def checkpoint_format(self, checkpoint: Checkpoint) -> WeightFormat:
        """The weight format a config.json's checkpoint is stored in, with the modules it
        leaves unquantised; a group size the catalogue has no entry for is built from its
        family's group-128 entry."""
        group = checkpoint.group
        if group is None:
            fmt = self.weight_format(checkpoint.format_id or "bf16")
        elif group.id in self.weight_formats:
            fmt = self.weight_formats[group.id]
        else:
            base_id = "gptq_8bit_g128" if group.bits == 8 else "gptq_4bit_g128"
            base = self.weight_formats["awq_4bit_g128" if group.family == "awq" else base_id]
            size = group.group_size
            storage = StorageType(
                id=group.id,
                name=checkpoint.label,
                block_size=size or 1,
                block_bytes=None,
                bits_per_weight=group.bits + (group.scale_bits / size if size else 0),
                row_extra_bits=0 if size else group.scale_bits,
            )
            fmt = replace(base, id=group.id, name=checkpoint.label, storage=storage)
        return replace(fmt, keep=checkpoint.keep) if checkpoint.keep else fmt

    def kv_format(self, name: str) -> StorageType:
        return self.storage_types[_lookup("KV cache format", name, self._index["kv"], _plain)]

    def gpu(self, name: str) -> GPU:
        index = self._index["gpu"]
        found = index.get(gpu_key(name))
        if found is not None:
            return self.gpus[found]
        suggestions = difflib.get_close_matches(gpu_key(name), list(index), n=3, cutoff=0.6)
        names = list(dict.fromkeys(self.gpus[index[s]].name for s in suggestions))
        raise UnknownNameError("GPU", name, names)

    @cached_property
    def _index(self) -> dict[str, dict[str, str]]:
        """Normalised names to ids, built once: ids first, so an id beats another's alias."""

        def index(
            entries: Mapping[str, Sequence[str]], key: Callable[[str], str]
        ) -> dict[str, str]:
            found: dict[str, str] = {}
            for ident in entries:
                found.setdefault(key(ident), ident)
            for ident, names in entries.items():
                for name in names:
                    found.setdefault(key(name), ident)
            return found

        def precision_names(ident: str) -> tuple[str, ...]:
            return (self.precisions[ident].name, *self.precisions[ident].aliases)

        spellings: dict[str, tuple[str, ...]] = {}
        for entry in self.names.values():
            spellings[entry.model] = (*spellings.get(entry.model, ()), entry.name, *entry.also)
        return {
            "model": index(
                {m.id: (m.name, m.hf_repo, *spellings.get(m.id, ())) for m in self.models.values()},
                _plain,
            ),
            "name": index({n.name: n.also for n in self.names.values()}, _plain),
            "weights": index({k: precision_names(k) for k in self.weight_formats}, _plain),
            "kv": index(
                {k: precision_names(k) for k in self.storage_types if self.precisions[k].kv_cache},
                _plain,
            ),
            "gpu": index({g.id: (g.name, *g.aliases) for g in self.gpus.values()}, gpu_key),
        }


_HUB = re.compile(r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/", re.IGNORECASE)


def _repo(name: str) -> str:
    """A Hugging Face address as its owner/name id; other names unchanged."""
    return _HUB.sub("", name.strip()).rstrip("/")


def _plain(name: str) -> str:
    """Case, spaces and dashes do not matter: 'Q4_K_M', 'q4-k-m' and 'q4 k m' are one name."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


_VENDOR_WORDS = re.compile(r"^(nvidia|geforce|amd|radeon|apple|intel)+")


def gpu_key(name: str) -> str:
    """'GeForce RTX 4090 D', 'geforce-rtx-4090d' and 'RTX 4090D' all give 'rtx4090d'."""
    squashed = re.sub(r"[\s_\-]+", "", name.lower())
    return _VENDOR_WORDS.sub("", squashed)


def _lookup(kind: str, name: str, index: Mapping[str, str], key: Callable[[str], str]) -> str:
    """The id that ``name`` stands for; else an error suggesting the closest ids."""
    found = index.get(key(name))
    if found is not None:
        return found
    ids = sorted(set(index.values()))
    raise UnknownNameError(kind, name, difflib.get_close_matches(key(name), ids, n=3, cutoff=0.5))


# -- building ------------------------------------------------------------------------------


def build_catalogue(
    models: Sequence[Mapping[str, Any]],
    precisions: Sequence[Mapping[str, Any]],
    gpus: Sequence[Mapping[str, Any]],
    *,
    names: Sequence[Mapping[str, Any]] = (),
    locate: Locator = _no_lines,
    checked: bool = False,
) -> Catalogue:
    """Check the documents' semantics (unless they were, ``checked``: a cached copy of files
    that passed) and build the catalogue; the first problem raises."""
    problems = (
        [] if checked else check_catalogue(models, precisions, gpus, names=names, locate=locate)
    )
    if problems:
        raise problems[0]
    return replace(_build(models, precisions, gpus), names=_names(names))


def check_catalogue(
    models: Sequence[Mapping[str, Any]],
    precisions: Sequence[Mapping[str, Any]],
    gpus: Sequence[Mapping[str, Any]],
    *,
    names: Sequence[Mapping[str, Any]] = (),
    locate: Locator = _no_lines,
) -> list[CatalogueError]:
    """Every semantic problem at once (the JSON Schemas have checked shapes and types)."""
    problems = _Problems(locate)
    for file, docs in ((MODELS_FILE, models), (PRECISIONS_FILE, precisions), (GPUS_FILE, gpus)):
        seen: set[str] = set()
        for index, entry in enumerate(docs):
            ident = str(entry.get("id", ""))
            if ident in seen:
                problems.add(file, index, entry, "id", f"duplicate id {ident!r}")
            seen.add(ident)
    for index, entry in enumerate(models):
        if not isinstance(entry.get("config"), Mapping):
            continue  # the schema reports a missing or malformed config
        try:
            parse_config(entry["config"], where="config")
        except ConfigError as error:
            message = str(error).removeprefix("config: ")
            problems.add(MODELS_FILE, index, entry, "config", message, error.path)
    _check_precisions(precisions, problems)
    _check_names(names, models, precisions, problems)
    _check_gpu_names(gpus, problems)
    return problems.found


def _check_gpu_names(gpus: Sequence[Mapping[str, Any]], problems: _Problems) -> None:
    """A GPU's name or alias that reads the same as another GPU's (as lookups normalise them)
    would make --gpu silently pick one of the two."""
    owner: dict[str, str] = {}
    for index, entry in enumerate(gpus):
        ident = str(entry.get("id", ""))
        spellings = [ident, str(entry.get("name", "")), *map(str, entry.get("aliases") or ())]
        for spelling in dict.fromkeys(spellings):
            key = gpu_key(spelling)
            if key in owner and owner[key] != ident:
                problems.add(
                    GPUS_FILE,
                    index,
                    entry,
                    "aliases",
                    f"{spelling!r} also names GPU {owner[key]!r}: give each GPU its own names",
                )
            owner.setdefault(key, ident)


def _check_names(
    names: Sequence[Mapping[str, Any]],
    models: Sequence[Mapping[str, Any]],
    precisions: Sequence[Mapping[str, Any]],
    problems: _Problems,
) -> None:
    """Every name stands for a known model and format, and no spelling means two things."""
    model_ids = {str(m.get("id")) for m in models}
    ids = {_plain(i): i for i in model_ids}
    formats = {str(p.get("id")) for p in precisions if p.get("scope") is not None}
    seen: dict[str, str] = {}
    for index, entry in enumerate(names):
        label = {**entry, "id": entry.get("name", f"#{index + 1}")}
        if entry.get("model") not in model_ids:
            problems.add(NAMES_FILE, index, label, "model", f"unknown model {entry.get('model')!r}")
        weights = entry.get("weights")
        if weights is not None and weights not in formats:
            problems.add(NAMES_FILE, index, label, "weights", f"unknown format {weights!r}")
        for spelling in (entry.get("name"), *entry.get("also", ())):
            key = _plain(str(spelling))
            if ids.get(key, entry.get("model")) != entry.get("model"):
                problems.add(
                    NAMES_FILE, index, label, "name", f"{spelling!r} is another model's id"
                )
            if key in seen and seen[key] != entry.get("model"):
                problems.add(
                    NAMES_FILE, index, label, "name", f"{spelling!r} already names {seen[key]!r}"
                )
            seen[key] = str(entry.get("model"))


def _names(raw: Sequence[Mapping[str, Any]]) -> dict[str, Name]:
    return {
        str(n["name"]): Name(
            name=str(n["name"]),
            model=str(n["model"]),
            weights=str(n["weights"]) if n.get("weights") else None,
            note=str(n.get("note", "")),
            source=str(n["source"]),
            also=tuple(str(a) for a in n.get("also", ())),
        )
        for n in raw
    }


class _Problems:
    """Problems found so far, each placed at its file, line, entry and field."""

    def __init__(self, locate: Locator) -> None:
        self.locate = locate
        self.found: list[CatalogueError] = []

    def add(
        self,
        file: str,
        index: int,
        entry: Mapping[str, Any],
        fld: str,
        message: str,
        inner: tuple[str, ...] = (),
    ) -> None:
        path: Path = (index, fld, *inner) if fld in entry else (index,)
        self.found.append(
            CatalogueError(
                message,
                file=file,
                line=self.locate(file, path),
                entry=str(entry.get("id", f"#{index + 1}")),
                field=fld,
            )
        )


def _check_precisions(precisions: Sequence[Mapping[str, Any]], problems: _Problems) -> None:
    """Storage types the estimator needs, GGUF mixes that name known types and conditions,
    scopes it knows."""
    known = {str(p["id"]) for p in precisions}
    for needed in required_storage_ids():
        if needed not in known:
            problems.found.append(
                CatalogueError(
                    f"the estimator needs a format with id {needed!r}", file=PRECISIONS_FILE
                )
            )
    for index, entry in enumerate(precisions):
        mix = entry.get("mix")
        if isinstance(mix, Mapping) and "base" in mix:
            _check_mix(index, entry, mix, known, problems)
    for index, entry in enumerate(precisions):
        scope = entry.get("scope")
        if scope is not None and scope not in SCOPES:
            problems.add(
                PRECISIONS_FILE, index, entry, "scope", f"expected one of {', '.join(SCOPES)}"
            )
        unquantised = entry.get("unquantised")
        if unquantised is not None and unquantised not in known:
            problems.add(
                PRECISIONS_FILE, index, entry, "unquantised", f"unknown type {unquantised!r}"
            )


def _check_mix(
    index: int,
    entry: Mapping[str, Any],
    mix: Mapping[str, Any],
    known: set[str],
    problems: _Problems,
) -> None:
    rules = [r for r in (*mix.get("rules", ()), *mix.get("post", ())) if isinstance(r, Mapping)]
    for name in [mix["base"], *(rule.get("type") for rule in rules)]:
        if name not in known:
            problems.add(PRECISIONS_FILE, index, entry, "mix", f"mix names unknown type {name!r}")
    for rule in rules:
        for condition in rule.get("when", ()):
            if condition.partition(":")[0] not in MIX_CONDITIONS:
                problems.add(
                    PRECISIONS_FILE,
                    index,
                    entry,
                    "mix",
                    f"unknown condition {condition!r}; expected one of "
                    + ", ".join(MIX_CONDITIONS),
                )
    if entry.get("scope") != "gguf":
        problems.add(PRECISIONS_FILE, index, entry, "scope", "a format with a mix needs scope gguf")


def _build(
    models: Sequence[Mapping[str, Any]],
    precisions: Sequence[Mapping[str, Any]],
    gpus: Sequence[Mapping[str, Any]],
) -> Catalogue:
    precision_rows = {str(p["id"]): _precision(p) for p in precisions}
    storage = {
        ident: StorageType(
            id=ident,
            name=p.name,
            block_size=p.block_size or 1,
            block_bytes=p.block_bytes
            if p.block_bytes is not None
            else (p.bits // 8 if p.bits and p.bits % 8 == 0 else None),
            bits_per_weight=p.bits_per_weight,
        )
        for ident, p in precision_rows.items()
    }
    formats = {}
    for raw in precisions:
        ident = str(raw["id"])
        mix = raw.get("mix") or {}
        formats[ident] = WeightFormat(
            id=ident,
            name=str(raw["name"]),
            storage=storage[mix["base"]] if mix else storage[ident],
            scope=str(raw.get("scope") or "all"),
            loadable=raw.get("scope") is not None,
            unquantised=storage[raw["unquantised"]] if raw.get("unquantised") else None,
            family=str(raw["family"]),
            rules=_rules(mix.get("rules", ())),
            post=_rules(mix.get("post", ())),
        )
    return Catalogue(
        models={str(m["id"]): _model(m) for m in models},
        precisions=precision_rows,
        storage_types=storage,
        weight_formats=formats,
        gpus={str(g["id"]): _gpu(g) for g in gpus},
    )


def _rules(raw: Sequence[Mapping[str, Any]]) -> tuple[MixRule, ...]:
    return tuple(
        MixRule(roles=tuple(r["tensors"]), type=str(r["type"]), when=tuple(r.get("when", ())))
        for r in raw
    )


def _model(raw: Mapping[str, Any]) -> Model:
    config = raw["config"]
    return Model(
        id=str(raw["id"]),
        name=str(raw["name"]),
        family=str(raw["family"]),
        hf_repo=str(raw["hf_repo"]),
        config_source=str(raw["config_source"]),
        params_published=int(raw["params_published"]),
        params_source=str(raw["params_source"]),
        active_params_published=(
            int(raw["active_params_published"])
            if raw.get("active_params_published") is not None
            else None
        ),
        config=config,
    )


def _precision(raw: Mapping[str, Any]) -> Precision:
    def opt(key: str) -> Any:
        return raw.get(key)

    return Precision(
        id=str(raw["id"]),
        name=str(raw["name"]),
        kind=str(raw["kind"]),
        family=str(raw["family"]),
        bits_per_weight=float(raw["bits_per_weight"]),
        source=str(raw["source"]),
        notes=str(raw.get("notes", "")),
        bits=opt("bits"),
        sign_bits=opt("sign_bits"),
        exponent_bits=opt("exponent_bits"),
        mantissa_bits=opt("mantissa_bits"),
        max_normal=opt("max_normal"),
        min_normal=opt("min_normal"),
        block_size=opt("block_size"),
        block_bytes=opt("block_bytes"),
        scope=opt("scope"),
        kv_cache=bool(raw.get("kv_cache", False)),
        aliases=tuple(str(a) for a in raw.get("aliases", ())),
        mix_base=(raw.get("mix") or {}).get("base"),
    )


def _gpu(raw: Mapping[str, Any]) -> GPU:
    return GPU(
        id=str(raw["id"]),
        name=str(raw["name"]),
        vendor=str(raw["vendor"]),
        aliases=tuple(str(a) for a in raw.get("aliases", ())),
        memory_bytes=int(raw["memory_bytes"]),
        memory_gb=float(raw["memory_gb"]),
        bandwidth_gb_s=float(raw["bandwidth_gb_s"]),
        source=str(raw["source"]),
        unified_memory=bool(raw.get("unified_memory", False)),
        usable_fraction=raw.get("usable_fraction"),
        nvidia_smi_total_mib=raw.get("nvidia_smi_total_mib"),
        architecture=str(raw.get("architecture") or ""),
        tflops=tuple(sorted((str(k), float(v)) for k, v in (raw.get("tflops") or {}).items())),
    )
