"""A stand-in chat model for lmms-eval with no weights (runs inside the lmms-eval venv; never imported by pytest).

It answers each round from what it was given, so the test can see what reached the model: the round number, how
many of its own earlier replies came back as assistant turns (and the last of them), whether an image came with
the first user turn, and the question. Registered through the ``lmms_eval.models`` entry point by the test.
"""

from lmms_eval.api.model import lmms
from lmms_eval.models.registry_v2 import ModelManifest
from lmms_eval.protocol import ChatMessages

MODEL_ID = "owl_standin"


def _reply(messages, round_idx):
    chat = ChatMessages(messages=messages)
    roles = [m.role for m in chat.messages]
    replies = [c.text for m in chat.messages if m.role == "assistant" for c in m.content if c.type == "text"]
    images = [c for m in chat.messages for c in m.content if c.type == "image"]
    question = [c.text for c in chat.messages[-1].content if c.type == "text"][-1]
    size = getattr(images[0].url, "size", None) if images else None
    last = replies[-1] if replies else ""
    return f"round {round_idx}; {len(replies)} earlier replies; image {size}; roles {'/'.join(roles)}; q: {question}; last: <{last}>"


class StandIn(lmms):
    is_simple = False

    def __init__(self, **kwargs):
        super().__init__()
        self.settings = kwargs

    def generate_until(self, requests):
        out = []
        for req in requests:
            _, doc_to_messages, _gen, doc_id, task, split = req.arguments
            out.append(_reply(doc_to_messages(self.task_dict[task][split][doc_id]), 0))
        return out

    def generate_until_multi_round(self, requests):
        results = []
        for req in requests:
            _, doc_to_messages, _gen, doc_id, task, split = req.arguments
            doc = self.task_dict[task][split][doc_id]
            replies, info, round_idx = [], None, 0
            while True:
                if round_idx == 0:
                    messages = doc_to_messages(doc)
                else:
                    payload = doc_to_messages(doc, round_idx=round_idx, previous_output=list(replies), previous_round_info=info)
                    messages, terminal, _prev, info = payload
                    if terminal:
                        break
                replies.append(_reply(messages, round_idx))
                round_idx += 1
            results.append(replies)
        return results

    def loglikelihood(self, requests):
        raise NotImplementedError("the stand-in only generates")


MANIFEST = ModelManifest(model_id=MODEL_ID, chat_class_path="owl_lmms_standin.StandIn")
