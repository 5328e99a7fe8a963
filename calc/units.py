"""Byte units and the one function that formats a byte count for people."""

from __future__ import annotations

from calc._errors import InputError

KIB = 1024
MIB = 1024**2
GIB = 1024**3
GB = 1000**3
MB = 1000**2


def gib(n_bytes: int) -> float:
    return n_bytes / GIB


def gb(n_bytes: int) -> float:
    return n_bytes / GB


def format_bytes(n_bytes: int, *, unit: str = "both", digits: int = 1) -> str:
    """Format bytes as GiB (what nvidia-smi's MiB add up to), GB (vendor specs), or both.

    >>> format_bytes(21_100_000_000)
    '19.7 GiB (21.1 GB)'
    """
    if unit == "GiB":
        return f"{n_bytes / GIB:.{digits}f} GiB"
    if unit == "GB":
        return f"{n_bytes / GB:.{digits}f} GB"
    if unit == "MiB":
        return f"{n_bytes / MIB:.0f} MiB"
    if unit == "both":
        return f"{n_bytes / GIB:.{digits}f} GiB ({n_bytes / GB:.{digits}f} GB)"
    raise InputError(f"unit must be GiB, GB, MiB or both, not {unit!r}")
