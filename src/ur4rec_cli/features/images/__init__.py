"""The image path: CLIP weights and model, posters, the `clip` artifact, new items' image features."""
