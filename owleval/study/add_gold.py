"""``owleval study add-gold``: more gold answers (or gold pairs) for a running study, topped up into every queue."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from owleval.study import gold, pair_gold
from owleval.study.pair_study import is_pairwise
from owleval.study.special import META_KEY, add_blind_gold, graded_regular_count, read_settings
from owleval.study.store import Store


def add_gold(store: Store, path: Path, gold_rate: float | None = None) -> tuple[int, dict[str, int]]:
    """``owleval study add-gold``: store the gold rows of ``path`` and top up every annotator's blind gold, placed
    at random after the answers they have graded so far. ``gold_rate`` replaces the study's rate when given.
    Returns the number of new gold rows and annotator -> blind gold items added."""
    meta = store.meta()
    settings = read_settings(meta)
    if gold_rate is not None:
        settings = replace(settings, gold_rate=gold_rate)
    added: dict[str, int] = {}
    path = Path(path)
    with store.write() as conn:
        people = conn.execute("SELECT annotator_id, name FROM annotators ORDER BY name").fetchall()
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (META_KEY, settings.to_json()))
        if is_pairwise(meta):  # gold pairs: question_id, model_a, model_b, winner[, note]
            new_rows = pair_gold.insert_gold_pairs(conn, pair_gold.read_gold_pairs(path, conn), path)
            for annotator_id, name in people:
                added[name] = pair_gold.add_gold_items(conn, int(annotator_id), name, settings.gold_rate, int(meta["seed"]))
            return new_rows, added
        new_rows = gold.insert_gold(conn, gold.read_gold_csv(path, conn), path)
        total = conn.execute("SELECT COUNT(*) FROM gold_answers").fetchone()[0]
        for annotator_id, name in people:
            rng = random.Random(f"quality:add-gold:{meta['seed']}:{name}:{total}")
            added[name] = add_blind_gold(conn, int(annotator_id), settings.gold_rate, rng, graded_regular_count(conn, int(annotator_id)))
    return new_rows, added
