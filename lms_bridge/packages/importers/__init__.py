"""Format importers behind one interface (:class:`~.base.Importer`).

Use :func:`detect_and_load` for uploads; :func:`load_directory` for an already opened
package folder; :func:`find_importer` to ask which format a folder is in.
"""

from __future__ import annotations

from .base import Importer, detect_and_load, find_importer, importers, load_directory
from .cmi5 import Cmi5Importer
from .common_cartridge import CommonCartridgeImporter
from .native import NativeImporter
from .scorm import ScormImporter

__all__ = [
    "Cmi5Importer",
    "CommonCartridgeImporter",
    "Importer",
    "NativeImporter",
    "ScormImporter",
    "detect_and_load",
    "find_importer",
    "importers",
    "load_directory",
]
