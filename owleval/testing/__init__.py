"""Test utilities for adapter authors (needs pytest): ``owleval.testing.conformance``."""
