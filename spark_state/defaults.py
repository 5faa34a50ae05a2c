"""Defaults that more than one command uses, declared once (and light to import: the CLI's help shows them)."""

DRIFT_MARGIN = 0.10  # a bench figure this much worse than the one recorded before is drift
