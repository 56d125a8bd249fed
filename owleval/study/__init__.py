"""Studies: one SQLite file per study holding answers, annotators, their queues and every grade or vote event.
A-D and pairwise kinds side by side: creation, sampling, queues, gold and checks, import and export."""
