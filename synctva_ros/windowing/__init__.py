"""Utterance windowing: camera, microphone and speech-to-text streams -> utterance windows, in sensor time.

The rules are listed in :mod:`synctva_ros.windowing.windower`, whose
:class:`~synctva_ros.windowing.windower.UtteranceWindower` applies them to the incoming
messages. Where each rule lives:

* :mod:`~synctva_ros.windowing.closing`: the closing policy (rules 1, 2, 9, 11: window bounds,
  voice-activity closing, the bounded pending queue);
* :mod:`~synctva_ros.windowing.clock`: the sensor clock, time-reset detection and the closing time (rules 3, 6);
* :mod:`~synctva_ros.windowing.stamps`: zero, negative, far-future and stale stamps, transcript strings
  (rules 12-14);
* :mod:`~synctva_ros.windowing.old_timeline`: the old timeline's buffers held for late transcripts (rule 13c);
* :mod:`~synctva_ros.windowing.inputs`: what is accepted as a frame or an audio chunk (rule 7), frame thinning;
* :mod:`~synctva_ros.windowing.counters`: the counters and their rate-limited warnings;
* :mod:`~synctva_ros.windowing.sink`: the stream-sink protocol (rule 10);
* :mod:`~synctva_ros.windowing.buffers`: the bounded frame and audio buffers (rules 3, 5, 11);
* :mod:`~synctva_ros.windowing.vad`: WebRTC voice-activity segmentation (rule 9).
"""
