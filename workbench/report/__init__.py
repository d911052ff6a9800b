"""Reports: figures, a self-contained HTML page and JSON score records."""

from .figures import time_course_figure
from .html import render_report

__all__ = ["render_report", "time_course_figure"]
