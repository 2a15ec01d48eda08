"""What the model reads besides item ids: texts from a language model (``llm/``), CLIP image features
(``images/``), text embeddings (``embeddings.py``)."""
