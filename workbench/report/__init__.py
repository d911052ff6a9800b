"""Batch reports: configuration, task execution over benchmark objects, and the HTML page."""

from .build import build_report
from .config import ConfigError, demo_config, load_config, parse_config
from .html import render_batch_report

__all__ = ["ConfigError", "build_report", "demo_config", "load_config", "parse_config", "render_batch_report"]
