"""The verification bench: streaming TTFT, decode rate and aggregate throughput of OpenAI-compatible endpoints."""
