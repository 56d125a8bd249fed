"""Ships manifest.json (the OwlEval file list with checksums) inside the owleval package."""
