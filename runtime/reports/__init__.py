"""What a run writes: cells.csv and summary.json, the self-contained review page, thumbnails, atomic writes."""

from hema.runtime.reports.atomic_files import write_bytes_atomic, write_text_atomic
from hema.runtime.reports.html_page import write_html_report
from hema.runtime.reports.tables import CsvCellWriter, summarise, write_summary

__all__ = [
    "CsvCellWriter",
    "summarise",
    "write_bytes_atomic",
    "write_html_report",
    "write_summary",
    "write_text_atomic",
]
