"""Read rosbag2 bags without ROS and window them exactly as the node does.

Source: rosbags 0.11 ``AnyReader`` (mcap and sqlite3 storage, messages merged
in log-time order; custom types from the bag's own message definitions, falling
back to :func:`synctva_ros.bags.types.get_synctva_typestore`).

:func:`windows_from_bag` follows the node's procedure message by message: the
message is converted with :mod:`synctva_ros.core.codecs` and added to an
:class:`~synctva_ros.windowing.windower.UtteranceWindower`, then ``poll(now)``
is called with ``now`` = the message's header stamp (for a ``std_msgs/String``
transcript, which has no header, its log time: the node stamps it on arrival
under ``/clock``). A camera frame or audio chunk with a 0 header stamp (a driver that leaves it unset) is
given its log time as arrival time, as the node stamps it on arrival
(:func:`~synctva_ros.windowing.stamps.effective_stamp`): it is placed, thinned and polled at that time.
At the end of the bag ``flush()`` closes what is left.
Camera frames that the windower's thinning would drop are not decoded (as in the node).

Message types are recognised by their names, as the node's ``topics.*_msg_type`` parameters choose them:
on ``topics.audio`` ``synctva_ros/AudioChunk`` or ``audio_common_msgs/AudioStamped``; on
``topics.transcript`` ``synctva_ros/Transcript``, ``hri_msgs/LiveSpeech`` or ``whisper_msgs/Transcription``
(stamped with its log time, as the node stamps it on arrival); LiveSpeech on each
``/humans/voices/<id>/speech`` once ``topics.voices_tracked`` has listed the voice; the ROS4HRI persons
of ``topics.persons_tracked`` (:class:`~synctva_ros.bags.hri.HriBagTopics`). The third-party messages are
converted by the node's own functions (:mod:`synctva_ros.core.hri_fields`). Each window is attributed to a
voice, person and camera frame as it is emitted (:meth:`~synctva_ros.core.persons.PersonRegistry.attribute`),
as the node's window feed does.
:func:`iter_windows_from_bag` yields each window as soon as it is polled, so a
streaming feature cache attached to the windower sees the data up to that moment, as
in the node.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

from rosbags.highlevel import AnyReader

from synctva_ros.bags.hri import HriBagTopics
from synctva_ros.bags.types import get_synctva_typestore
from synctva_ros.config import TopicsConfig, WindowingConfig
from synctva_ros.core.codecs import (
    AudioDecodeError,
    ImageDecodeError,
    audio_chunk_to_float,
    check_image_layout,
    image_to_rgb,
    stamp_to_seconds,
)
from synctva_ros.core.hri_fields import audio_stamped_to_samples, live_speech_to_fields, voice_id_from_topic, \
    whisper_to_fields
from synctva_ros.core.inputs import InputError
from synctva_ros.core.persons import PersonRegistry
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.windowing.stamps import effective_stamp
from synctva_ros.windowing.windower import UtteranceWindower

__all__ = ["BagMessage", "GroundTruth", "read_bag", "ground_truth_from_bag", "windows_from_bag",
           "iter_windows_from_bag", "match_truth", "match_label", "GROUND_TRUTH_TOPIC"]

log = logging.getLogger(__name__)

#: Topic of the ground-truth ``EmotionState`` messages written by :func:`synctva_ros.bags.make_bag.make_bag`.
GROUND_TRUTH_TOPIC = "/ground_truth/emotion"


@dataclass(frozen=True)
class BagMessage:
    """One decoded bag message: topic, type name (``pkg/msg/Name``), log time (ns), the rosbags message."""

    topic: str
    msgtype: str
    timestamp_ns: int
    msg: Any


@dataclass(frozen=True)
class GroundTruth:
    """A ground-truth label: class name and index, utterance bounds (seconds), ids."""

    label: str
    label_index: int
    start: float
    end: float
    utterance_id: str
    dialogue_id: str


def read_bag(path: str | Path, topics: Collection[str] | Callable[[str], bool] | None = None
             ) -> Iterator[BagMessage]:
    """Decoded messages of a bag in log-time order.

    Args:
        path: bag directory (or a single ``.mcap`` / ``.db3`` file).
        topics: restrict to these topics, or to the topics for which this predicate is true (``None`` = all).

    Raises:
        FileNotFoundError: no such bag. rosbags.highlevel.AnyReaderError: unreadable bag.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"bag {p} does not exist")
    with AnyReader([p], default_typestore=get_synctva_typestore()) as reader:
        keep = topics if callable(topics) else (lambda t: topics is None or t in topics)
        conns = [c for c in reader.connections if keep(c.topic)]
        if not conns:  # rosbags reads every connection when given none
            return
        for conn, ts, raw in reader.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, ts, reader.deserialize(raw, conn.msgtype))


def _ground_truth(msg: Any) -> GroundTruth:
    return GroundTruth(msg.label, int(msg.label_index), stamp_to_seconds(msg.window_start),
                       stamp_to_seconds(msg.window_end), msg.utterance_id, msg.dialogue_id)


def is_bag(path: str | Path) -> bool:
    """True for a rosbag2 recording: a directory with ``metadata.yaml``, or a ``.mcap`` / ``.db3`` file
    (rosbag2's storage plugins)."""
    path = Path(path)
    return (path.is_dir() and (path / "metadata.yaml").exists()) or path.suffix in (".mcap", ".db3")


def ground_truth_from_bag(path: str | Path, topic: str = GROUND_TRUTH_TOPIC) -> list[GroundTruth]:
    """The ground-truth labels of a bag, in time order."""
    return [_ground_truth(m.msg) for m in read_bag(path, [topic])]


def _absolute(name: str) -> str:
    return name if name.startswith("/") else "/" + name.lstrip("~/")


def match_truth(window: Any, truth: list[GroundTruth],
                by_id: dict[str, GroundTruth] | None = None) -> GroundTruth | None:
    """Ground truth of ``window`` (``utterance_id``, ``start``, ``end`` in seconds): by ``utterance_id``, else
    the utterance overlapping it most (VAD windows, LiveSpeech windows: no id), else None.

    Args:
        by_id: ``{utterance_id: GroundTruth}`` of ``truth`` (built when ``None``).
    """
    if by_id is None:
        by_id = {g.utterance_id: g for g in truth if g.utterance_id}
    if window.utterance_id and window.utterance_id in by_id:
        return by_id[window.utterance_id]
    best, overlap = None, 0.0
    for g in truth:
        o = min(window.end, g.end) - max(window.start, g.start)
        if o > overlap:
            best, overlap = g, o
    return best


def match_label(window: UtteranceWindow, truth: list[GroundTruth],
                by_id: dict[str, GroundTruth] | None = None) -> str | None:
    """Ground-truth class of ``window`` (:func:`match_truth`), None when nothing matches."""
    g = match_truth(window, truth, by_id)
    return g.label if g is not None else None


def windows_from_bag(path: str | Path, cfg: WindowingConfig | None = None, sample_rate: int = 16000,
                     topics: TopicsConfig | None = None, ground_truth_topic: str = GROUND_TRUTH_TOPIC,
                     windower: UtteranceWindower | None = None) -> list[tuple[UtteranceWindow, str | None]]:
    """Window a bag offline exactly as the node windows the replayed bag.

    Args:
        path: bag directory.
        cfg: windowing configuration (defaults if ``None``).
        sample_rate: window audio rate in Hz (the node uses ``features.audio_sample_rate``).
        topics: topic names (relative names are taken from the root namespace);
            defaults to :class:`~synctva_ros.config.TopicsConfig`.
        ground_truth_topic: topic of ground-truth ``EmotionState`` messages.
        windower: use this windower (e.g. to read its ``stats`` afterwards);
            a new one from ``cfg`` otherwise.

    Returns:
        ``[(window, label)]`` in emission order; ``label`` is the ground-truth
        class of the window's ``utterance_id``, else of the ground-truth
        utterance overlapping it most (VAD windows), else ``None`` (:func:`match_label`).

    Raises:
        FileNotFoundError: no such bag. Undecodable messages are logged and counted, not raised.
    """
    windows = list(iter_windows_from_bag(path, cfg, sample_rate, topics, windower))
    truth = ground_truth_from_bag(path, ground_truth_topic)
    by_id = {g.utterance_id: g for g in truth if g.utterance_id}
    return [(win, match_label(win, truth, by_id)) for win in windows]


def iter_windows_from_bag(path: str | Path, cfg: WindowingConfig | None = None, sample_rate: int = 16000,
                          topics: TopicsConfig | None = None,
                          windower: UtteranceWindower | None = None,
                          persons: PersonRegistry | None = None) -> Iterator[UtteranceWindow]:
    """Yield the windows of a bag in emission order, each as soon as the windower emits it.

    Arguments as :func:`windows_from_bag` (without ground truth), and ``persons``: the registry that
    attributes each window to a person (a new one when ``None``). Use this with a windower
    whose sink is a streaming feature cache and process each window before the next
    message is read, as the node does.

    Raises:
        FileNotFoundError: no such bag. Undecodable messages are logged and counted, not raised.
    """
    topics = topics or TopicsConfig()
    w = windower if windower is not None else UtteranceWindower(cfg or WindowingConfig(), sample_rate)
    t_img, t_aud = _absolute(topics.image), _absolute(topics.audio)
    t_tr, t_txt = _absolute(topics.transcript), _absolute(topics.text)
    registry = persons if persons is not None else PersonRegistry()
    if hasattr(w.sink, "annotate"):  # a streaming cache's text stage at the transcript: the same persons, as the node
        w.sink.annotate = registry.attribute  # type: ignore[union-attr]
    hri = HriBagTopics(topics, registry)
    wanted = {t_img, t_aud, t_tr, t_txt}
    bad = 0
    for m in read_bag(path, lambda t: t in wanted or hri.wants(t)):
        msg, now, kind = m.msg, None, m.msgtype.rsplit("/", 1)[-1]
        # the log time is when the replayed message reaches the node (its clock follows the bag's /clock): the
        # node's arrival time, standing in for a 0 header stamp (effective_stamp, rule 12), thinning included
        arrival = m.timestamp_ns * 1e-9
        try:
            if m.topic == t_img and m.msgtype == "sensor_msgs/msg/Image":
                stamp = stamp_to_seconds(msg.header.stamp)
                now = effective_stamp(stamp, arrival)
                check_image_layout(msg.height, msg.width, msg.encoding, msg.step, msg.data)
                registry.set_camera_frame(msg.header.frame_id)
                if not w.thin_frame(stamp, arrival):  # frames the thinning drops are not decoded (as in the node)
                    w.add_frame(stamp, image_to_rgb(msg.height, msg.width, msg.encoding, msg.is_bigendian,
                                                    msg.step, msg.data), now=arrival)
            elif m.topic == t_aud and m.msgtype.endswith("/AudioChunk"):
                stamp = stamp_to_seconds(msg.header.stamp)
                now = effective_stamp(stamp, arrival)
                w.add_audio(stamp, audio_chunk_to_float(msg.sample_rate, msg.channels, msg.encoding, msg.data),
                            msg.sample_rate, now=arrival)
            elif m.topic == t_aud and kind == "AudioStamped":
                stamp, samples, rate = audio_stamped_to_samples(msg)
                now = effective_stamp(stamp, arrival)
                w.add_audio(stamp, samples, rate, now=arrival)
            elif kind == "LiveSpeech" and (m.topic == t_tr or hri.voice_listed(m.topic)):
                fields = live_speech_to_fields(msg, voice_id_from_topic(m.topic))
                now = fields.stamp
                w.add_transcript(**fields.windower_kwargs())
            elif m.topic == t_tr and kind == "Transcription":
                fields = whisper_to_fields(msg, arrival)
                now = fields.stamp
                w.add_transcript(**fields.windower_kwargs())
            elif m.topic == t_tr and m.msgtype.endswith("/Transcript"):
                stamp = stamp_to_seconds(msg.header.stamp)
                now = effective_stamp(stamp, arrival)
                w.add_transcript(msg.text, stamp_to_seconds(msg.start), stamp_to_seconds(msg.end),
                                 bool(msg.is_final), stamp=stamp, now=arrival, utterance_id=msg.utterance_id,
                                 dialogue_id=msg.dialogue_id, language=msg.language,
                                 confidence=float(msg.confidence), speaker_id=msg.speaker_id)
            elif m.topic == t_txt and m.msgtype == "std_msgs/msg/String":
                now = arrival  # no header: stamped on arrival, as the node does
                w.add_transcript(msg.data, 0.0, 0.0, True, stamp=now)
            else:  # tracked lists and persons' ids (no poll: the node's feed does not see them)
                hri.on_message(m.topic, m.msgtype, msg)
                continue
        except (ImageDecodeError, AudioDecodeError, InputError) as e:
            bad += 1
            if bad <= 5:
                log.warning("%s at %d ns cannot be decoded: %s", m.topic, m.timestamp_ns, e)
            continue
        yield from map(registry.attribute, w.poll(now, arrival))
    yield from map(registry.attribute, w.flush())
    if bad:
        log.warning("%d messages of %s could not be decoded", bad, path)

