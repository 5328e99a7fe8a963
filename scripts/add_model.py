"""Add a model to data/models.yaml from its Hugging Face config.json.

    .venv/bin/python scripts/add_model.py path/to/config.json --id qwen3-4b-2507 \\
        --source https://huggingface.co/Qwen/Qwen3-4B-Instruct-2507/blob/main/config.json \\
        [--params-published 4022468096 --params-source "model card: 4.0B parameters"] \\
        [--name "Qwen3 4B 2507"] [--family "Qwen3"]

Keeps the config keys memory depends on, computes the parameter count, warns when it differs
from the published count by more than 1%, refuses an id that is already there, checks the
whole catalogue with the new entry, and only then appends the entry in the file's canonical
form. Running it twice changes nothing: the second run stops at the duplicate id.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from calc import (  # noqa: E402
    CalcError,
    catalogue_problems,
    count_parameters,
    default_data_dir,
    memory_keys,
    parse_config,
    parse_config_text,
)

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")
HF_URL = re.compile(r"^https://huggingface\.co/([A-Za-z0-9_.\-]+)/([A-Za-z0-9_.\-]+)/")


class _Folded(str):
    """A long text written as a folded block (>-), as the catalogue does."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True


def _folded(dumper: yaml.SafeDumper, text: _Folded) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(text), style=">")


def _sequence(dumper: yaml.SafeDumper, items: list[Any]) -> yaml.Node:
    flow = all(not isinstance(item, dict | list) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


_Dumper.add_representer(_Folded, _folded)
_Dumper.add_representer(list, _sequence)


def format_entry(entry: dict[str, Any]) -> str:
    """One catalogue entry in the file's canonical form (key order as given)."""
    if "params_source" in entry:
        entry = {**entry, "params_source": _Folded(entry["params_source"])}
    text: str = yaml.dump([entry], Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=96)
    return text


def build_entry(
    config: dict[str, Any],
    *,
    ident: str,
    source: str,
    params_published: int | None,
    params_source: str | None,
    name: str | None,
    family: str | None,
    active: int | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The entry and any warnings; raises CalcError for an unusable config."""
    kept = memory_keys(config)
    full, trimmed = parse_config(config), parse_config(kept)
    if full != trimmed:  # pragma: no cover - a guard for keys added to the parser later
        raise CalcError("config keys the estimator reads are missing from MEMORY_KEYS")
    computed = count_parameters(trimmed)
    warnings = []
    if params_published is None:
        params_published = computed.total
        params_source = params_source or (
            f"no published count given: {computed.total:,} computed from {source} by "
            "scripts/add_model.py"
        )
    else:
        closest = min(
            (computed.total, computed.checkpoint_total), key=lambda n: abs(n - params_published)
        )
        off = (closest - params_published) / params_published
        if abs(off) > 0.01:
            warnings.append(
                f"the config gives {closest:,} parameters, {off:+.1%} from the published "
                f"{params_published:,}: check the config and the published figure"
            )
        if not params_source:
            raise CalcError("--params-published needs --params-source: where the figure is from")
    match = HF_URL.match(source)
    hf_repo = f"{match.group(1)}/{match.group(2)}" if match else ""
    entry: dict[str, Any] = {
        "id": ident,
        "name": name or (match.group(2) if match else ident),
        "family": family or (config.get("model_type") or "other"),
        "hf_repo": hf_repo,
        "config_source": source,
        "params_published": params_published,
        "params_source": params_source,
    }
    if active is not None:
        entry["active_params_published"] = active
    entry["config"] = kept
    if not hf_repo:
        raise CalcError(f"--source must be a huggingface.co link to config.json, got {source!r}")
    return entry, warnings


def read_config(path: Path) -> dict[str, Any]:
    """The config.json at ``path``, or a CalcError that says why not."""
    try:
        return parse_config_text(path.read_text(encoding="utf-8"), str(path))
    except OSError as error:
        raise CalcError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise CalcError(f"{path} is not UTF-8 text; a config.json is JSON in UTF-8") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("config", type=Path, help="a Hugging Face config.json")
    parser.add_argument("--id", required=True, dest="ident", help="lowercase id, e.g. qwen3-4b")
    parser.add_argument("--source", required=True, help="link to the config.json on the Hub")
    parser.add_argument("--params-published", type=int)
    parser.add_argument("--params-source", help="where the published count is from, quoted")
    parser.add_argument(
        "--active-params-published", type=int, help="MoE: the published active count"
    )
    parser.add_argument("--name")
    parser.add_argument("--family")
    parser.add_argument("--data", type=Path, help="the data folder (default: the repository's)")
    args = parser.parse_args(argv)
    data = args.data or default_data_dir()
    models = data / "models.yaml"

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    if not ID_PATTERN.match(args.ident):
        return fail(f"--id {args.ident!r}: use lowercase letters, digits, '.' and '-'")
    try:
        config = read_config(args.config)
    except CalcError as error:
        return fail(str(error))
    existing = yaml.safe_load(models.read_text(encoding="utf-8")) or []
    if any(isinstance(entry, dict) and entry.get("id") == args.ident for entry in existing):
        return fail(f"{models}: a model with id {args.ident!r} is already there; nothing changed")
    try:
        entry, warnings = build_entry(
            config,
            ident=args.ident,
            source=args.source,
            params_published=args.params_published,
            params_source=args.params_source,
            name=args.name,
            family=args.family,
            active=args.active_params_published,
        )
    except CalcError as error:
        return fail(f"{args.config}: {error}")
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    text = models.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + format_entry(entry)
    # Check the whole catalogue with the new entry before touching the real file.
    with tempfile.TemporaryDirectory() as scratch:
        trial = Path(scratch) / "data"
        shutil.copytree(data, trial)
        (trial / "models.yaml").write_text(text, encoding="utf-8")
        problems = catalogue_problems(trial)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    partial = models.with_suffix(".yaml.tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, models)
    print(f"added {args.ident} to {models}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
