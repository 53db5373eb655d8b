"""smray: soil moisture retrieval from passive-microwave brightness temperatures, on Ray."""

__version__ = "0.1.0"

# PROJ's libraries must be loaded before ecCodes'. With the pinned wheels (pyproj 3.7.1,
# eccodes/eccodeslib 2.50) a process that loads ecCodes first — any xarray open does, through the
# cfgrib backend's entry point — aborts (std::bad_alloc) at its first pyproj transform (the EASE-Grid
# geolocation, smray.formats.ease); importing pyproj first (~0.08 s) avoids it.
# tests/test_formats_nsidc_flat.py::test_proj_works_after_eccodes_in_a_fresh_process checks it.
try:
    import pyproj as _pyproj  # noqa: F401
except ImportError:  # pragma: no cover - pyproj is a pinned dependency
    pass


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``names`` for provenance records ("absent" when not installed)."""
    from importlib import metadata

    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = __version__ if name == "smray" else "absent"
    return out
