"""Files copied into kit exports; each runs inside its kit and is never imported by OwlEval itself."""
