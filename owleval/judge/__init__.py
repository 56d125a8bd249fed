"""``owleval judge``: an LLM judge that grades answers on the A-D rubric (or votes between two), resumably.
Prompt templates, reply parsing, the append-only request log and the runners; the report reads what it writes."""
