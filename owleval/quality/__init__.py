"""Annotator quality control: behaviour signals, gold and attention checks, agreement, Dawid-Skene and QC rules.
Used by the report and the Admin screen; built only on studies, records and stats (never on the report)."""

from owleval.quality.table import TABLE_COLUMNS, annotator_qc, annotator_table, flagged

__all__ = ["TABLE_COLUMNS", "annotator_qc", "annotator_table", "flagged"]
