"""``owleval data fetch|verify|info``: install, check and describe the OwlEval data set."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from owleval.console import console, err_console, make_progress
from owleval.errors import OwlEvalError
from owleval.paths import default_data_dir

data_app = typer.Typer(
    help="Install, verify and describe the OwlEval data set (50 images, 82 questions, 6 published answer sets).\n\n"
    "Example: owleval data fetch --from ../shared/owleval_82q",
    no_args_is_help=True,
)

DestOption = Annotated[
    Optional[Path],
    typer.Option("--dest", "--data", help="Data-set folder.", show_default="$OWLEVAL_DATA, else a set installed in the checkout's data/owleval_82q, else ~/.cache/owleval/owleval_82q"),
]


@data_app.command("fetch")
def fetch(
    source: Annotated[Optional[Path], typer.Option("--from", help="Install from this local folder (a copy of the upstream OwlEval folder) instead of downloading.")] = None,
    dest: DestOption = None,
    mirror: Annotated[Optional[str], typer.Option("--mirror", envvar="OWLEVAL_MIRROR", help="Download from this base URL instead of the pinned upstream URL (file paths are appended).")] = None,
) -> None:
    """Install the data set, verifying every file's size and sha256 against the manifest.

    Files are written atomically: an interrupted fetch leaves no partial file, and running it again resumes.
    A download host that cannot be reached (no network, a name that does not resolve) stops the fetch within
    seconds; timeouts, server errors and transfers cut short are retried.

    Example: owleval data fetch --from ../shared/owleval_82q
    """
    from owleval.fetch import install_dataset
    from owleval.manifest import load_manifest

    target = dest or default_data_dir()
    manifest = load_manifest()
    where = f"from {source}" if source else f"from {mirror or manifest.source_repository + ' @ ' + manifest.source_commit[:7]}"
    with make_progress() as progress:
        task = progress.add_task("fetch", total=len(manifest.files))
        report = install_dataset(target, source, mirror=mirror, manifest=manifest, on_file=lambda _entry, _outcome: progress.advance(task))
    console.print(
        f"[green]ok[/] {len(manifest.files)} files in {target} "
        f"({len(report.installed)} installed {where}, {len(report.already_present)} already present and verified)",
        highlight=False,
    )


@data_app.command("verify")
def verify(dest: DestOption = None) -> None:
    """Check every file of the installed data set against the manifest; name each missing or corrupt one.

    Exits non-zero when any file is missing or does not match.

    Example: owleval data verify
    """
    from owleval.fetch import verify_dataset

    root = dest or default_data_dir()
    statuses = verify_dataset(root)
    bad = [s for s in statuses if s.state != "ok"]
    for status in bad:
        err_console.print(f"[red]{status.state}[/] {root / status.entry.path} {status.detail}", highlight=False)
    if bad:
        raise OwlEvalError(f"{len(bad)} of {len(statuses)} files missing or corrupt in {root}; run `owleval data fetch` to repair")
    console.print(f"[green]ok[/] all {len(statuses)} files in {root} match the manifest", highlight=False)


@data_app.command("info")
def info(dest: DestOption = None) -> None:
    """Counts of questions by turn type, category, ability and dialogue length, as tables.

    Example: owleval data info
    """
    from owleval.manifest import load_manifest
    from owleval.questions import ABILITIES, load_questions

    questions = load_questions(dest or default_data_dir())
    manifest = load_manifest()
    console.print(f"OwlEval {manifest.version} (manifest {manifest.digest}): {len({q.image for q in questions})} images, {len(questions)} questions")

    turns = Table(title="Turn types")
    turns.add_column("turn type")
    turns.add_column("questions", justify="right")
    labels = {"single": "single-turn only", "first": "opens a dialogue", "later": "later turn of a dialogue"}
    counts = Counter(q.turn_type for q in questions)
    for key, label in labels.items():
        turns.add_row(label, str(counts[key]))
    for category in ("single_turn", "multi_turn"):
        turns.add_row(f"category field holds {category}", str(sum(category in q.categories for q in questions)))
    both = [q for q in questions if {"single_turn", "multi_turn"} <= set(q.categories)]
    if both:
        which = " (the questions that open a dialogue)" if all(q.turn_type == "first" for q in both) else ""
        turns.caption = (
            f"The upstream category field gives {len(both)} questions both single_turn and multi_turn{which}, so its "
            f"counts add up to more than {len(questions)}; the turn types above come from the dialogue structure and "
            "add up to the whole set."
        )
    console.print(turns)

    abilities = Table(title="Abilities")
    abilities.add_column("ability")
    abilities.add_column("name")
    abilities.add_column("questions", justify="right")
    for letter, name in ABILITIES.items():
        abilities.add_row(letter, name, str(sum(letter in q.abilities for q in questions)))
    console.print(abilities)

    lengths = Counter(sum(1 for q in questions if q.dialogue_id == d) for d in {q.dialogue_id for q in questions if q.turn_type != "single"})
    dialogues = Table(title=f"Dialogues ({sum(lengths.values())})")
    dialogues.add_column("turns")
    dialogues.add_column("dialogues", justify="right")
    for length in sorted(lengths):
        dialogues.add_row(str(length), str(lengths[length]))
    console.print(dialogues)


@data_app.command("build-manifest")
def build_manifest_command(
    source: Annotated[Path, typer.Option("--from", help="A folder holding the upstream OwlEval files.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the new manifest.json.")],
) -> None:
    """For maintainers: write a manifest of the files in a folder, keeping the current upstream pin.

    After moving the pin to a newer upstream commit, review the diff of the new manifest before committing it.

    Example: owleval data build-manifest --from ../shared/owleval_82q --out data/owleval_82q/manifest.json
    """
    from owleval.fileio import atomic_write_text
    from owleval.manifest import build_manifest, load_manifest

    if not source.is_dir():
        raise OwlEvalError(f"--from {source}: no such folder")
    manifest = build_manifest(source, template=load_manifest())
    atomic_write_text(out, manifest.to_json())
    console.print(f"[green]ok[/] {out}: {len(manifest.files)} files, digest {manifest.digest}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
