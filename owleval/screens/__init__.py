"""The grading service's screens (A-D grading, pairwise voting, Admin) and what guards them: sign-in, throttles,
the grade bar, images; ``owleval/rate.py`` is the thin Streamlit entry point that starts them."""
