"""The grading service's entry point: ``streamlit run owleval/rate.py -- [--db grades.sqlite] [--data DATA_DIR]``
(``owleval rate`` runs this file too). It only starts the app; the screens live in :mod:`owleval.screens`."""

from owleval.screens.app import main

main()
