"""The report's jinja2 templates (report.md.j2, report.html.j2), shipped as package data."""
