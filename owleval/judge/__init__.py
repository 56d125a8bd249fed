"""``owleval judge``: a multimodal LLM judge that grades answers on the A-D rubric, resumably.

``prompt`` renders the versioned prompt template, ``parse`` reads the judge's JSON reply, ``log`` keeps the
append-only request log (raw.jsonl) and folds it into judgements, and ``run`` drives a judge over answer files.
"""
