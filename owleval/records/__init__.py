"""The grade and vote records people and judges produce: the A-D scale, the columns, and the checks on reading them.
The lowest layer of the human side: studies write these records, the judge writes them too, the report reads them."""
