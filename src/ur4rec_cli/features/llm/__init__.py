"""The language-model path: prompts and template texts, asking a model (local GGUF or an
OpenAI-compatible server), its answer cache and checks, the `ur4rec llm` artifacts, new items' texts."""
