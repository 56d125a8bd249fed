"""OwlEval's task functions for lmms-eval, copied into the task folder by ``owleval export lmms-eval``.

This file runs inside lmms-eval (OwlEval never imports it). Each document is one OwlEval dialogue: its questions in
turn order, the image (an absolute path or embedded), its sample id and the data-set digest. ``owleval`` asks the
turns one after another, each later turn with the model's own earlier replies as assistant turns
(``generate_until_multi_round``); ``owleval_single`` asks each question alone with its image.
``process_results`` hands back OwlEval's ids with the replies, since lmms-eval's sample log drops the document.
"""

import base64
import io
from importlib import metadata

from PIL import Image


def _image(doc):
    if doc.get("image_b64"):
        data = base64.b64decode(doc["image_b64"])
    else:
        with open(doc["image_path"], "rb") as fh:
            data = fh.read()
    return Image.open(io.BytesIO(data)).convert("RGB")


def _user(text, image=None):
    content = [{"type": "image", "url": image}] if image is not None else []
    content.append({"type": "text", "text": text})
    return {"role": "user", "content": content}


def _history(doc, round_idx, earlier):
    """The chat up to turn ``round_idx``: the image with the first question, then each earlier reply and the next question."""
    questions = doc["questions"]
    messages = [_user(questions[0], _image(doc))]
    for turn in range(1, round_idx + 1):
        messages.append({"role": "assistant", "content": [{"type": "text", "text": str(earlier[turn - 1])}]})
        messages.append(_user(questions[turn]))
    return messages


def doc_to_messages(doc, lmms_eval_specific_kwargs=None, round_idx=None, previous_output=None, previous_round_info=None):
    """Round 0 (``round_idx`` None): the first turn. Later rounds: ``(messages, terminal, previous_output, info)``."""
    if round_idx is None:
        return _history(doc, 0, [])
    if round_idx >= len(doc["questions"]):
        return (None, True, previous_output, previous_round_info)
    earlier = list(previous_output or [])
    if len(earlier) < round_idx:
        raise ValueError(f"{doc['sample_id']}: round {round_idx} needs {round_idx} earlier replies, got {len(earlier)}")
    return (_history(doc, round_idx, earlier), False, previous_output, previous_round_info)


def doc_to_visual(doc):
    return [_image(doc)]


def doc_to_text(doc, lmms_eval_specific_kwargs=None, round_idx=None, previous_output=None, previous_round_info=None):
    """For backends without ``doc_to_messages``: the question of each round (they keep the history themselves)."""
    questions = doc["questions"]
    if round_idx is None:
        return questions[0]
    if round_idx >= len(questions):
        return (None, None, True, previous_output, previous_round_info)
    return (None, questions[round_idx], False, previous_output, previous_round_info)


def doc_to_target(doc):
    return ""


def _replies(results):
    replies = results[0] if results and isinstance(results[0], (list, tuple)) else list(results)
    return ["" if r is None else str(r) for r in replies]


def _kit_version():
    try:
        return metadata.version("lmms-eval")
    except metadata.PackageNotFoundError:
        return None


def process_results(doc, results):
    """OwlEval's ids and versions with the replies, one per question id, in the sample log."""
    record = {
        "sample_id": doc["sample_id"],
        "question_ids": list(doc["question_ids"]),
        "outputs": _replies(results),
        "protocol": doc["protocol"],
        "dataset": doc["dataset"],
        "dataset_digest": doc["dataset_digest"],
        "owleval_version": doc["owleval_version"],
        "kit_version": _kit_version(),
    }
    return {"owleval_answered": record}


def aggregate_answered(records):
    """How many questions got a reply (OwlEval grades the replies; lmms-eval only counts them)."""
    return sum(len(r["outputs"]) for r in records)
