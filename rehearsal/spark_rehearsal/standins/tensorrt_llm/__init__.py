"""Stand-in `tensorrt_llm` package for the rehearsal images (sim/images.py installs it with this file replaced
by one carrying the image's version). Its API surface is exactly what the shipped converter uses."""
