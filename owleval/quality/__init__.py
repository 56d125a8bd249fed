"""Annotator quality control: behaviour signals, gold and attention checks, ordinal agreement, a Dawid-Skene rater
model, QC rules and the annotator table. Imported by the report and by the app's Admin page, so nothing here imports
Streamlit or the report pipeline (only the leaf helpers ``owleval.report.stats`` and constants)."""

from owleval.quality.table import TABLE_COLUMNS, annotator_qc, annotator_table, flagged

__all__ = ["TABLE_COLUMNS", "annotator_qc", "annotator_table", "flagged"]
