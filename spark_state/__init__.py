"""spark-state: declarative state for a fleet of NVIDIA DGX Spark LLM servers."""

__version__ = "0.1.0"
