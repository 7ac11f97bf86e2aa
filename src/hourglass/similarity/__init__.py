"""Similarity of neural representations, as functions of stimuli x features arrays."""
