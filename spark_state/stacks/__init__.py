"""Serving stacks: what spark-state knows about each server it runs (TensorRT-LLM today; vLLM, SGLang, llama.cpp
and NIM as they move here), one module per stack."""
