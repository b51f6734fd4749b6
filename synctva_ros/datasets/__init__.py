"""Emotion-recognition corpora and what is derived from them, with no ROS and no bag tools.

``utterance`` (the record), ``meld`` / ``iemocap`` / ``pickles`` (readers), ``splits`` (split
names and files), ``meld_raw`` / ``iemocap_release`` (recordings: MELD.Raw clips, IEMOCAP's wavs
and avis; ``recordings`` picks one by dataset), ``speech`` (espeak-ng rendering) and ``rendering``
(the rules that turn an utterance into the audio the bags carry), ``cache/`` (the training feature
cache). ``bags`` builds on this package; nothing here imports ``bags``.
"""
