"""Dates and JSON in one place: coercing a date argument, the season of a date, making a result
JSON-safe, and reading or writing a whole JSON object at a URL (through :mod:`smray.storage`, so every
backend is the same)."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np

from smray.config import parse_date
from smray.errors import SmrayError
from smray.storage import StorageConfig, filesystem, read_bytes, write_bytes


#: the meteorological seasons (calendar months)
SEASONS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("DJF", (12, 1, 2)), ("MAM", (3, 4, 5)), ("JJA", (6, 7, 8)), ("SON", (9, 10, 11)))


def season_of(month: int) -> str:
    """The meteorological season (``DJF``, ``MAM``, ``JJA``, ``SON``) of a calendar month."""
    return next(name for name, months in SEASONS if month in months)


def as_date(value: dt.date | str, where: str = "date") -> dt.date:
    """A date from a ``date``, a ``datetime`` (its date) or ``YYYY-MM-DD`` text; a one-line SmrayError
    naming ``where`` otherwise."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return parse_date(value, where)


def as_optional_date(value: dt.date | str | None, where: str, default: dt.date | None = None) -> dt.date | None:
    """:func:`as_date`, or ``default`` when ``value`` is None or empty."""
    if value is None or value == "":
        return default
    return as_date(value, where)


def iso_time(value: Any) -> str | None:
    """ISO text of a date/datetime/``datetime64`` (``YYYY-MM-DD`` when it falls on midnight); None for NaT."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        ts = np.datetime64(value, "s")
    except (ValueError, TypeError):
        return str(value)
    if np.isnat(ts):
        return None
    text = str(ts)
    return text[:10] if text.endswith("T00:00:00") else text


def json_safe(obj: Any) -> Any:
    """Plain JSON types only: string keys, lists for tuples and arrays, non-finite floats → None,
    numpy scalars → Python, dates → ISO text (:func:`iso_time`), bytes decoded, anything else ``str``."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (np.datetime64, dt.date, dt.datetime)):
        return iso_time(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """The dotted paths, sorted, where two JSON-like values differ: nested dicts are compared key by
    key (a key only one has differs); any other value compares whole ("" when ``a`` and ``b``
    themselves differ and are not both dicts)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += differences(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def write_json(url: str, storage: StorageConfig | None, data: Any) -> None:
    """Write ``data`` (made :func:`json_safe`) as one whole indented JSON object at ``url``."""
    fs, path = filesystem(url, storage)
    write_bytes(fs, path, json.dumps(json_safe(data), indent=1).encode())


def read_json(url: str, storage: StorageConfig | None = None) -> Any:
    """The JSON object at ``url``. ``FileNotFoundError`` when absent (callers word what that means);
    SmrayError naming the URL when it is not valid JSON."""
    fs, path = filesystem(url, storage)
    try:
        return json.loads(read_bytes(fs, path))
    except ValueError:
        raise SmrayError(f"{url}: not valid JSON") from None
