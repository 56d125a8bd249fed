"""Runs inside the Inspect venv (.venv-inspect), never imported by pytest: the exported OwlEval task end to end
with a mock model that answers from what it was sent, then (with --scores) precomputed_scores on the log.

Usage: python inspect_kit_script.py run TASK_FILE LOG_DIR | score SCORES.jsonl LOG_FILE
The mock's replies name the turn, how many of its own earlier replies came back as assistant turns, the last of
them, and whether an image came with the first user turn. Usage is given explicitly, so no tokenizer is fetched.
"""

import os
import sys
from pathlib import Path

from inspect_ai.model import ContentImage, ModelOutput, ModelUsage, get_model


def reply(messages, tools, tool_choice, config):
    assistant = [m for m in messages if m.role == "assistant"]
    users = [m for m in messages if m.role == "user"]
    first = users[0].content if isinstance(users[0].content, list) else []
    image = any(isinstance(c, ContentImage) and c.image for c in first)
    last = assistant[-1].text if assistant else ""
    text = f"turn {len(users) - 1}; {len(assistant)} earlier replies; image {image}; q: {users[-1].text}; last: <{last}>"
    output = ModelOutput.from_content(model="mockllm/model", content=text)
    output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)
    return output


def run(task_file: str, log_dir: str) -> None:
    from inspect_ai import eval as inspect_eval

    model = get_model("mockllm/model", custom_outputs=reply)
    task = Path(task_file).resolve()
    os.chdir(task.parent)  # Inspect takes a task file relative to the working directory
    [log] = inspect_eval(task.name, model=model, log_dir=str(Path(log_dir).resolve()), display="none")
    print("LOG", log.location, log.status)


def score(scores: str, log_file: str) -> None:
    from inspect_ai import score as inspect_score
    from inspect_ai.log import read_eval_log, write_eval_log
    from inspect_ai.scorer import mean, precomputed_scores

    log = read_eval_log(log_file)
    scored = inspect_score(log, precomputed_scores(scores, metrics={"mean_score": [mean()], "acceptable": [mean()]}), display="none")
    write_eval_log(scored, log_file)
    for result in scored.results.scores:  # a dict-valued score gives one result per key
        print("METRIC", result.name, result.metrics["mean"].value)

if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"run": run, "score": score}[command](*args)
