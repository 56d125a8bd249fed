"""Model code OwlEval ships itself: the bundled mPLUG-Owl (``mplug_owl``).
Other models reach ``owleval generate`` through the adapters in ``adapters/``."""
