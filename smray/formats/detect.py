"""Which product a file is, from its name (and, when the name is ambiguous, its first bytes).

The name patterns are the real archive names (formats.md):

========================  ===============================================================
product                    example name
========================  ===============================================================
``jaxa_l3_tb``             ``GW1AM2_20110701_01D_EQMA_L3SGT06LA2220220.h5``
``nsidc_ae_land3``         ``AMSR_E_L3_DailyLand_V06_20110701.hdf`` (also ``B04``)
``nsidc_0302``             ``ID2r1-AMSRE-D.252011182A.v03.06H`` (and ``.TIM``; ``.gz`` allowed)
``nsidc_0301``             ``ID2r3-AMSRE-ML2011182A.v03.06H`` (``ML`` global, ``NL``/``SL`` polar)
``nsidc_ae_l2a``           ``AMSR_E_L2A_BrightnessTemperatures_V12_201110032238_D.hdf``
``era_rda``                ``ei.oper.an.sfc.regn128sc.2011070100`` (NCAR RDA ds627.0, GRIB1, no extension)
``lprm_l3``                ``LPRM-AMSR_E_L3_A_SOILM3_V002_20110701.nc``
``esa_cci_sm``             ``ESACCI-SOILMOISTURE-L3S-SSMV-PASSIVE-20161230000000-fv04.2.nc``
``era_grib``               ``*.grb``, ``*.grib``, ``*.grib1``, ``*.grib2`` (or ``GRIB`` magic)
``era_netcdf``             a netCDF/HDF5 file whose header names ``swvl1``
``ismn_stm``               ``*.stm``
``smray_twin_truth``       hook for the twin's truth files (``smray_twin_truth*``)
========================  ===============================================================

:data:`PRODUCT_PATTERNS` is a plain dict and may be extended. Groups named ``date`` (YYYYMMDD)
and ``pass_`` (``A``/``D``) feed :func:`parse_date` and :func:`parse_pass`.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import re
from typing import Any

from smray.errors import SmrayError

#: product id → regex matched (``re.search``, case-sensitive) against the file's base name.
PRODUCT_PATTERNS: dict[str, str] = {
    "jaxa_l3_tb": (r"^(?P<sat>[A-Z0-9]+)_(?P<date>\d{8})_(?P<period>01D|01M)_EQM(?P<pass_>[AD])_"
                   r"L3SGT(?P<band>06|07|10|18|23|36|89)(?P<res>[HL])(?P<tail>[A-Z0-9]+)\.h5$"),
    "nsidc_ae_land3": r"^AMSR_E_L3_DailyLand_(?P<version>V\d\d|B\d\d)_(?P<date>\d{8})\.hdf$",
    "nsidc_0302": (r"^ID2r1-AMSRE-D\.25(?P<year>\d{4})(?P<doy>\d{3})(?P<pass_>[AD])\.(?P<version>v\d\d)\."
                   r"(?P<channel>(?:06|10|18|23|36|89)[HV]|TIM)(?:\.gz)?$"),
    "nsidc_0301": (r"^ID2r(?P<rx>\d)-AMSRE-(?P<area>ML|NL|SL)(?P<year>\d{4})(?P<doy>\d{3})(?P<pass_>[AD])\."
                   r"(?P<version>v\d\d)\.(?P<channel>(?:06|10|18|23|36|89)[HV]|TIM)(?:\.gz)?$"),
    "nsidc_ae_l2a": r"^AMSR_E_L2A_BrightnessTemperatures_\w+?_(?P<date>\d{8})\d{4}_(?P<pass_>[AD])\.hdf$",
    "era_rda": r"^ei\.oper\.an\.(?:sfc|pl|ml)\.regn128(?:sc|uv)\.(?P<date>\d{8})(?P<hour>\d\d)$",
    "lprm_l3": r"^LPRM-AMSR_?E_L3_(?P<pass_>[AD])_SOILM3_V\d{3}_(?P<date>\d{8})\d*\.nc4?$",
    "esa_cci_sm": r"^ESACCI-SOILMOISTURE-L3S-SSMV-(?P<kind>[A-Z]+)-(?P<date>\d{8})\d{6}-fv[\d.]+\.nc$",
    "era_grib": r"\.(grb|grib|grb1|grib1|grb2|grib2)$",
    "ismn_stm": r"\.stm$",
    "smray_twin_truth": r"^smray_twin_truth.*",
}

#: Other names that carry a pass letter or a date (used only by the parsers).
_EXTRA_PASS_PATTERNS: tuple[str, ...] = ()

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
HDF4_MAGIC = b"\x0e\x03\x13\x01"
NETCDF3_MAGICS = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
GRIB_MAGIC = b"GRIB"
#: Bytes in a file's header that mark a twin truth file (the twin writer's title/product attributes).
TWIN_TRUTH_MARKERS = (b"smray_twin_truth", b"smray twin truth")

#: How many bytes :func:`detect_product` callers should read for ``head``.
HEAD_BYTES = 65536


def basename(name: str) -> str:
    """The last path component of a path or URL (query strings dropped)."""
    name = str(name).split("?", 1)[0].rstrip("/")
    return posixpath.basename(name.replace("\\", "/"))


def container(head: bytes | None) -> str | None:
    """'hdf5', 'netcdf3', 'hdf4', 'grib' or None from a file's first bytes."""
    if not head:
        return None
    if head.startswith(NETCDF3_MAGICS):
        return "netcdf3"
    # HDF5 may sit behind a user block of 512, 1024, 2048 … bytes.
    if head.startswith(HDF5_MAGIC) or any(head[o:o + 8] == HDF5_MAGIC for o in (512, 1024, 2048, 4096)):
        return "hdf5"
    if head.startswith(HDF4_MAGIC):
        return "hdf4"
    if head.startswith(GRIB_MAGIC):
        return "grib"
    return None


def detect_product(name: str, head: bytes | None = None) -> str:
    """The product id of a file (a key of :data:`PRODUCT_PATTERNS`), or ``"unknown"``.

    ``name`` is a path, URL or base name; ``head`` (optional) is the file's first bytes
    (:data:`HEAD_BYTES` is plenty). The name decides when it matches a pattern; otherwise the
    contents do: ``GRIB`` magic → ``era_grib``; a netCDF/HDF5 header naming ``swvl1`` →
    ``era_netcdf``; the twin marker → ``smray_twin_truth``.
    """
    base = basename(name)
    for product, pattern in PRODUCT_PATTERNS.items():
        if re.search(pattern, base):
            return product
    kind = container(head)
    if kind == "grib":
        return "era_grib"
    if kind in ("netcdf3", "hdf5") and head is not None:
        if any(m in head for m in TWIN_TRUTH_MARKERS):
            return "smray_twin_truth"
        if b"swvl1" in head:
            return "era_netcdf"
        if b"ESACCI" in head or b"ESA CCI" in head:
            return "esa_cci_sm"
        if b"Brightness Temperature (H)" in head:
            return "jaxa_l3_tb"
    if kind == "hdf4" and head is not None and b"_Land_Grid" in head:
        return "nsidc_ae_land3"
    return "unknown"


def _match(name: str) -> re.Match[str] | None:
    base = basename(name)
    for pattern in (*PRODUCT_PATTERNS.values(), *_EXTRA_PASS_PATTERNS):
        m = re.search(pattern, base)
        if m and ("date" in m.groupdict() or "pass_" in m.groupdict() or "doy" in m.groupdict()):
            return m
    return None


def parse_date(name: str) -> dt.date | None:
    """The observation day in a product name, or None.

    Known patterns give their date field; for other names (ERA downloads such as
    ``ERA-Interim_OPER_0001_AN_20000101_0000.grb``) the first stand-alone ``YYYYMMDD`` (optionally
    followed by ``hhmmss``) that is a real date between 1950 and 2100. ISMN ``.stm`` names span
    years and give None.
    """
    base = basename(name)
    if re.search(PRODUCT_PATTERNS["ismn_stm"], base):
        return None
    m = _match(base)
    if m is not None:
        g = m.groupdict()
        if g.get("date"):
            return _to_date(g["date"])
        if g.get("year") and g.get("doy"):
            try:
                return dt.date(int(g["year"]), 1, 1) + dt.timedelta(days=int(g["doy"]) - 1)
            except ValueError:
                return None
    for cand in re.finditer(r"(?<!\d)(\d{8})(?:\d{6})?(?!\d)", base):
        d = _to_date(cand.group(1))
        if d is not None and 1950 <= d.year <= 2100:
            return d
    return None


def _to_date(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def parse_pass(name: str) -> str | None:
    """``"A"`` (ascending, 13:30 local) or ``"D"`` (descending, 01:30) from a product name, or None."""
    m = _match(name)
    if m is not None and m.groupdict().get("pass_"):
        return m.group("pass_")
    return None


def parse_name(name: str) -> dict[str, Any]:
    """All named fields of the matching pattern (``product`` added), e.g. JAXA band and resolution."""
    base = basename(name)
    for product, pattern in PRODUCT_PATTERNS.items():
        m = re.search(pattern, base)
        if m:
            return {"product": product, **{k: v for k, v in m.groupdict().items() if v is not None}}
    return {"product": "unknown"}


# --------------------------------------------------------------------------------------------
# Reading a source (URL, path or bytes) through the one storage seam
# --------------------------------------------------------------------------------------------
def source_name(source: Any, name: str | None = None) -> str:
    """A name for messages: ``name`` if given, else the URL/path, else ``"<bytes>"``."""
    if name:
        return name
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return os.fspath(source) if isinstance(source, os.PathLike) else str(source)


def load_source(source: Any, storage: Any = None, *, name: str | None = None) -> tuple[bytes, str]:
    """(bytes, name) of ``source``: bytes are returned as they are; a path or URL is read whole
    through :func:`smray.storage.filesystem` (``storage`` is a :class:`~smray.storage.StorageConfig`)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), source_name(source, name)
    url = source_name(source)
    from smray import storage as _storage

    try:
        fs, path = _storage.filesystem(url, storage)
        return _storage.read_bytes(fs, path), name or url
    except FileNotFoundError:
        raise SmrayError(f"{url}: file not found") from None
    except IsADirectoryError:
        raise SmrayError(f"{url}: is a directory, expected a file") from None
    except SmrayError:
        raise
    except Exception as err:  # fsspec backends raise many unrelated types
        raise SmrayError(f"{url}: cannot read ({type(err).__name__}: {str(err).strip()[:200]})") from None


def read_head(url: str, storage: Any = None, nbytes: int = HEAD_BYTES) -> bytes:
    """The first ``nbytes`` of the file at ``url``."""
    from smray import storage as _storage

    try:
        fs, path = _storage.filesystem(url, storage)
        with fs.open(path, "rb") as fh:
            return fh.read(nbytes)
    except FileNotFoundError:
        raise SmrayError(f"{url}: file not found") from None
    except IsADirectoryError:
        raise SmrayError(f"{url}: is a directory, expected a file") from None
    except Exception as err:
        raise SmrayError(f"{url}: cannot read ({type(err).__name__}: {str(err).strip()[:200]})") from None
