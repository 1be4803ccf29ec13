"""LanHAR's stages: the training loops of stage 1 (text encoder) and stage 2 (sensor encoder) and the steps
that tie interpretation, encoders and label embeddings together. Imports base, data, language and models."""
