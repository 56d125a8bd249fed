"""``owleval report``: scores, intervals, agreement, PPI, rankings and legacy metrics from grades and votes.
The top of the flow: it reads studies, judges and quality results; nothing below imports it."""
