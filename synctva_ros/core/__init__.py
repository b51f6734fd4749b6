"""The lowest layer: types and pure functions that every other layer may import.

``modalities`` (the modality order), ``window`` (the utterance window), ``batch`` (feature
containers and the torch batch), ``codecs`` (ROS message payloads to arrays), ``hashing``.
Nothing here imports another part of the package.
"""
