"""Export: PNG sequences named for the compositing tools, timing sheets (CSV, XDTS), provenance."""

from .exporter import ExportOptions, ExportReport, export_sequence, preview_names
from .naming import PRESETS, Naming, resolve_naming
from .timing import parse_csv, parse_xdts

__all__ = [
    "PRESETS", "ExportOptions", "ExportReport", "Naming", "export_sequence", "parse_csv", "parse_xdts",
    "preview_names", "resolve_naming",
]
