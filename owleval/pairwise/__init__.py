"""Pairwise mode: which answers are compared (pairs), pairwise studies and their votes (study, votes)."""
