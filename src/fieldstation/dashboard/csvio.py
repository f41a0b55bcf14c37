"""The dashboard's CSV upload: :mod:`fieldstation.csvimport`, shared with the API and the CLI."""

from fieldstation.csvimport import ImportReport, _parse, import_file

__all__ = ["ImportReport", "_parse", "import_file"]
