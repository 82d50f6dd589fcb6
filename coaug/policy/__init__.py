"""The instruction LLM: loading, precision, prompts, decoding and parsing its answers."""
