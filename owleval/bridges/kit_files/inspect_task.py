"""OwlEval as an Inspect AI task, copied into the export as ``owleval_task.py`` by ``owleval export inspect``.

This file runs inside Inspect (OwlEval never imports it). Each sample is one OwlEval dialogue, id
``owleval-<first question id>``: the image with the first question, then each later question as a new user turn
after the model's own earlier replies. The replies, each tied to its question id, go to the sample's store
(``owleval_replies``), which ``owleval answers import --from inspect LOG`` reads back. There is no scorer: grade the
answers in OwlEval, then attach the grades with ``precomputed_scores`` (see ``owleval grades export --format inspect``).

Run: inspect eval owleval_task.py --model PROVIDER/MODEL
"""

import json
from pathlib import Path

from inspect_ai import Task, task
from inspect_ai.dataset import json_dataset
from inspect_ai.model import ChatMessageUser
from inspect_ai.solver import Generate, TaskState, solver

HERE = Path(__file__).resolve().parent
EXPORT = json.loads((HERE / "owleval_export.json").read_text(encoding="utf-8"))


@solver
def owleval_dialogue():
    """Ask the dialogue's questions in turn; each reply becomes part of the history of the next turn."""

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        questions, ids = state.metadata["questions"], state.metadata["question_ids"]
        replies = []
        for turn, (question_id, question) in enumerate(zip(ids, questions)):
            if turn > 0:
                state.messages.append(ChatMessageUser(content=question))
            state = await generate(state)
            replies.append({"question_id": question_id, "answer": state.output.completion})
        state.store.set("owleval_replies", replies)
        return state

    return solve


@task
def owleval():
    return Task(
        dataset=json_dataset(str(HERE / "owleval.jsonl")),
        solver=owleval_dialogue(),
        version=EXPORT["owleval_version"],
        metadata={"owleval_version": EXPORT["owleval_version"], "dataset": EXPORT["dataset"], "dataset_digest": EXPORT["dataset_digest"]},
    )
