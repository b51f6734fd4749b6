"""Utterance windowing: bounded per-modality buffers in sensor time and the windower."""
