"""Where the data shipped inside the package lies: the registry, the published layouts and the demo's photos.

Everything is read through ``importlib.resources``, so a wheel installed into any environment finds it from any
working directory; a source checkout finds the same folders in the tree.
"""

from importlib import resources
from pathlib import Path

PACKAGE = "mycloset_assets"


class PackageDataError(RuntimeError):
    """The package's data is not on the file system (e.g. imported from a zip) or a file of it is missing."""


def data_path(*parts: str) -> Path:
    """A folder or file shipped with the package (``data_path("registry")``), as a file system path."""
    found = resources.files(PACKAGE).joinpath(*parts)
    if not isinstance(found, Path):
        raise PackageDataError(f"{PACKAGE}/{'/'.join(parts)} is not on the file system; install the package unzipped")
    if not found.exists():
        raise PackageDataError(f"{found} is missing from the installed package; reinstall mycloset-assets")
    return found


def registry_folder() -> Path:
    """The registry: one YAML per published checkpoint."""
    return data_path("registry")


def manifests_folder() -> Path:
    """The published layouts (one JSON per checkpoint: container, keys, shapes, dtypes) the synthesis rule fills."""
    return data_path("manifests")


def demo_data_folder() -> Path:
    """The demo's bundled photos and their licences."""
    return data_path("demo_data")
