"""`storystream export`: the events or the output tables of a time range as Parquet files that
DuckDB, pandas and Spark open directly."""

from streams.export.job import ExportSummary, export_events, export_tables

__all__ = ["ExportSummary", "export_events", "export_tables"]
