"""The judge prompt templates (package data)."""
