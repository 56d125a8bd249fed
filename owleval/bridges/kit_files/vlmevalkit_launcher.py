"""Run OwlEval in VLMEvalKit: copied into the export as ``run_owleval.py`` by ``owleval export vlmevalkit``.

This file runs inside VLMEvalKit's environment (OwlEval never imports it). It points ``LMUData`` at the export's
``LMUData`` folder (which holds ``OwlEval.tsv``), registers the data set class ``OwlEvalDataset`` (VLMEvalKit's
multi-turn ``ImageMTDataset``: each later turn is asked after the model's own earlier replies) in
``vlmeval.dataset``, records the kit's version beside the outputs (``owleval_kit.json``), then hands over to
VLMEvalKit's own ``run.main()`` in inference mode (``--data OwlEval --mode infer`` unless given).

Usage (from the environment VLMEvalKit is installed in):
    python run_owleval.py --model Qwen2-VL-7B-Instruct [--work-dir outputs] [any other run.py option]
Set VLMEVALKIT_ROOT to your VLMEvalKit checkout if its run.py is not found beside the installed vlmeval package.
Then: owleval answers import --from vlmevalkit outputs/ --out answers/
"""

import importlib.util
import json
import os
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASET = "OwlEval"
CLASS_NAME = "OwlEvalDataset"


def register():
    """Make ``OwlEval`` a data set VLMEvalKit's build_dataset finds (idempotent); returns the class."""
    import vlmeval.dataset as datasets
    from vlmeval.dataset.image_mt import ImageMTDataset

    existing = getattr(datasets, CLASS_NAME, None)
    if existing is not None:
        return existing

    class OwlEvalDataset(ImageMTDataset):
        """OwlEval's dialogues; LMUData/OwlEval.tsv is local (no URL, no checksum to download against)."""

        DATASET_URL = {DATASET: ""}
        DATASET_MD5 = {}

        def evaluate(self, eval_file, **judge_kwargs):
            raise NotImplementedError(f"OwlEval grades its answers itself: owleval answers import --from vlmevalkit {eval_file}")

    datasets.DATASET_CLASSES.append(OwlEvalDataset)
    if hasattr(datasets, "SUPPORTED_DATASETS"):
        datasets.SUPPORTED_DATASETS.append(DATASET)
    setattr(datasets, CLASS_NAME, OwlEvalDataset)
    return OwlEvalDataset


def find_run_py():
    import vlmeval

    roots = [Path(os.environ["VLMEVALKIT_ROOT"])] if os.environ.get("VLMEVALKIT_ROOT") else []
    roots.append(Path(vlmeval.__file__).resolve().parent.parent)
    for root in roots:
        if (root / "run.py").is_file():
            return root / "run.py"
    raise SystemExit(f"run_owleval.py: VLMEvalKit's run.py not found in {[str(r) for r in roots]}; set VLMEVALKIT_ROOT to your checkout")


def _option(argv, name, default):
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def _record_run(argv):
    """``owleval_kit.json`` in the work dir: what ``owleval answers import`` reads for the kit's version."""
    try:
        version = metadata.version("vlmeval")
    except metadata.PackageNotFoundError:
        version = None
    export = json.loads((HERE / "owleval_export.json").read_text(encoding="utf-8"))
    work_dir = Path(_option(argv, "--work-dir", "./outputs"))
    work_dir.mkdir(parents=True, exist_ok=True)
    record = {"kit": "vlmevalkit", "kit_version": version, "argv": argv, "dataset_digest": export["dataset_digest"],
              "owleval_version": export["owleval_version"]}
    (work_dir / "owleval_kit.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ["LMUData"] = str(HERE / "LMUData")
    register()
    if "--data" not in argv:
        argv = ["--data", DATASET, *argv]
    if "--mode" not in argv:
        argv += ["--mode", "infer"]
    run_py = find_run_py()
    spec = importlib.util.spec_from_file_location("vlmevalkit_run", run_py)
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    _record_run(argv)
    sys.argv = [str(run_py), *argv]
    if callable(getattr(run, "load_env", None)):
        run.load_env()
    return run.main()


if __name__ == "__main__":
    main()
