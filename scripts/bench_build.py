"""Time the site build against the same site without the hook, and at 1,000 models (issue 15).

    .venv/bin/python scripts/bench_build.py [--models 1000] [--runs 3]

Prints the median wall time of ``mkdocs build`` for: the same Material site without the hook
(nothing generated), the whole site with an empty table cache (every table computed) and with a
warm one (a build after a change to the prose), then the same two at ``--models`` models (the
catalogue's models repeated under new organisations and ids), with the largest page and the
search index each build wrote.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
MKDOCS = Path(sys.executable).parent / "mkdocs"
BARE = """INHERIT: {config}
hooks: []
strict: false
"""


def build(config: Path, site: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [str(MKDOCS), "build", "-q", "-f", str(config), "-d", str(site)],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise SystemExit(f"mkdocs build failed:\n{result.stderr}")
    return time.perf_counter() - started


def many_models(data: Path, count: int) -> None:
    """Repeat the catalogue's models, under new ids, names and organisations, to ``count``."""
    path = data / "models.yaml"
    models: list[dict[str, Any]] = yaml.safe_load(path.read_text(encoding="utf-8"))
    grown = list(models)
    copy = 0
    while len(grown) < count:
        copy += 1
        for model in models[: count - len(grown)]:
            repo = model["hf_repo"].split("/")[1]
            grown.append(
                {
                    **model,
                    "id": f"{model['id']}-copy{copy}",
                    "name": f"{model['name']} (copy {copy})",
                    "hf_repo": f"bench-org-{copy}/{repo}",
                }
            )
    path.write_text(yaml.dump(grown, Dumper=_Plain, sort_keys=False), encoding="utf-8")


class _Plain(yaml.SafeDumper):
    """No anchors and aliases: the data files refuse them."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def weights(site: Path) -> str:
    pages = list(site.rglob("*.html"))
    largest = max(pages, key=lambda p: p.stat().st_size)
    index = site / "search" / "search_index.json"
    return (
        f"{len(pages)} pages, largest {largest.relative_to(site)} "
        f"{largest.stat().st_size / 1024:,.0f} KiB with "
        f"{largest.read_text(encoding='utf-8').count('<'):,} tags; "
        f"search index {index.stat().st_size / 1024:,.0f} KiB"
    )


def timed_site(label: str, env: dict[str, str], runs: int, work: Path, bare: float) -> None:
    config = ROOT / "mkdocs.yml"
    cold = []
    for run in range(runs):
        cache = work / f"cache-{label}-{run}"
        cold.append(build(config, work / "site", {**env, "VRAM_GUIDE_CACHE": str(cache)}))
    warm = statistics.median(
        build(config, work / "site", {**env, "VRAM_GUIDE_CACHE": str(cache)}) for _ in range(runs)
    )
    cold_time = statistics.median(cold)
    print(f"{label:28} tables computed {cold_time:6.2f} s ({cold_time / bare:4.1f}x bare)")
    print(f"{label:28} tables kept     {warm:6.2f} s ({warm / bare:4.1f}x bare)")
    print(f"{'':28} {weights(work / 'site')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    env.pop("VRAM_GUIDE_DATA", None)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        bare_config = ROOT / f".bench-bare-{os.getpid()}.yml"
        bare_config.write_text(BARE.format(config=ROOT / "mkdocs.yml"), encoding="utf-8")
        try:
            bare = statistics.median(
                build(bare_config, work / "bare", env) for _ in range(args.runs)
            )
        finally:
            bare_config.unlink()
        print(f"{'without the hook':28} {bare:22.2f} s")
        timed_site("the catalogue", env, args.runs, work, bare)
        data = work / "data"
        shutil.copytree(ROOT / "data", data)
        many_models(data, args.models)
        timed_site(f"{args.models:,} models", {**env, "VRAM_GUIDE_DATA": str(data)}, 1, work, bare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
