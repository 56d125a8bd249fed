"""The ``hf`` adapter's prompt checks before any weights load: the chat template rendered on one fixed
conversation (its hash identifies the prompt format in ``answer_settings``; a template that reads today's date is
flagged, since it renders a different prompt each day), and one tiny dry batch through the processor with every
``-o`` setting, so a system role the template rejects or a processor setting it cannot take fails at load, before
any file is written."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from owleval.adapters.base import AdapterError, Conversation, ImageRef, Turn
from owleval.adapters.hf_common import chat_messages
from owleval.adapters.hf_load import one_line

if TYPE_CHECKING:
    from owleval.adapters.hf import HFAdapter

#: what the template is rendered on for its hash: an image, a question, an answer, a second question
FIXED_CONVERSATION = "user: [image] What is in the image? / assistant: A cat on a table. / user: Why is it there?"
_DATE = re.compile(r"strftime_now|date_string|\bnow\s*\(")


def fixed_conversation() -> Conversation:
    image = ImageRef(Path("fixed.png"))  # never loaded: the template only counts image parts
    return Conversation((Turn("What is in the image?", (image,), answer="A cat on a table."), Turn("Why is it there?")))


def template_facts(render: Callable[[list[dict[str, Any]]], str], template: str) -> dict[str, Any]:
    """``rendered_template_sha256`` (the template on :data:`FIXED_CONVERSATION`, without a system prompt) and
    ``template_uses_date``."""
    try:
        rendered = render(chat_messages(fixed_conversation()))
    except Exception as exc:  # noqa: BLE001 - any template error is the checkpoint's, reported as such
        raise AdapterError(f"the chat template cannot render a two-turn conversation with an image: {one_line(exc)}") from exc
    return {
        "rendered_template_sha256": hashlib.sha256(rendered.encode("utf-8")).hexdigest(),
        "template_uses_date": bool(_DATE.search(template)),
    }


def _tiny_image() -> Any:
    from PIL import Image

    return Image.new("RGB", (96, 64), (120, 90, 60))


def dry_run(adapter: HFAdapter, source: str, options: Mapping[str, str]) -> None:
    """Render the fixed conversation with the system prompt and run the processor on it with one small image and
    the ``-o`` processor settings; refuse, naming the option, whatever fails."""
    messages = chat_messages(fixed_conversation(), adapter.system)
    try:
        prompt = adapter.render(messages)
    except Exception as exc:  # noqa: BLE001
        raise AdapterError(f"option system: the chat template of {source!r} rejects a system prompt "
                           f"({one_line(exc)}); leave -o system out for this checkpoint") from exc
    try:
        adapter.encode([prompt], [adapter.prepare_images([_tiny_image()])])
    except Exception as exc:  # noqa: BLE001
        given = [f"-o {key}={options[key]}" for key in ("image_size", "max_pixels", "image_aspect") if options.get(key)]
        what = f"with {', '.join(given)}" if given else "with its own settings"
        raise AdapterError(f"the processor of {source!r} cannot prepare a test image {what}: {one_line(exc)}") from exc
