"""smray: soil moisture retrieval from passive-microwave brightness temperatures, on Ray."""

__version__ = "0.1.0"


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
