"""Read rosbag2 bags without ROS and window them exactly as the node does.

Source: rosbags 0.11 ``AnyReader`` (mcap and sqlite3 storage, messages merged
in log-time order; custom types from the bag's own message definitions, falling
back to :func:`synctva_ros.bags.types.get_synctva_typestore`).

:func:`windows_from_bag` follows the node's procedure message by message: the
message is converted with :mod:`synctva_ros.core.codecs` and added to an
:class:`~synctva_ros.windowing.windower.UtteranceWindower`, then ``poll(now)``
is called with ``now`` = the message's header stamp (for a ``std_msgs/String``
transcript, which has no header, its log time: the node stamps it on arrival
under ``/clock``). At the end of the bag ``flush()`` closes what is left.
Camera frames that the windower's thinning would drop are not decoded (as in the node).
:func:`iter_windows_from_bag` yields each window as soon as it is polled, so a
streaming feature cache attached to the windower sees the data up to that moment, as
in the node.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from rosbags.highlevel import AnyReader

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
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.windowing.windower import UtteranceWindower

__all__ = ["BagMessage", "GroundTruth", "read_bag", "ground_truth_from_bag", "windows_from_bag",
           "iter_windows_from_bag", "match_label", "GROUND_TRUTH_TOPIC"]

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


def read_bag(path: str | Path, topics: list[str] | None = None) -> Iterator[BagMessage]:
    """Decoded messages of a bag in log-time order.

    Args:
        path: bag directory (or a single ``.mcap`` / ``.db3`` file).
        topics: restrict to these topics (``None`` = all).

    Raises:
        FileNotFoundError: no such bag. rosbags.highlevel.AnyReaderError: unreadable bag.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"bag {p} does not exist")
    with AnyReader([p], default_typestore=get_synctva_typestore()) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        if not conns:  # rosbags reads every connection when given none
            return
        for conn, ts, raw in reader.messages(connections=conns):
            yield BagMessage(conn.topic, conn.msgtype, ts, reader.deserialize(raw, conn.msgtype))


def _ground_truth(msg: Any) -> GroundTruth:
    return GroundTruth(msg.label, int(msg.label_index), stamp_to_seconds(msg.window_start),
                       stamp_to_seconds(msg.window_end), msg.utterance_id, msg.dialogue_id)


def ground_truth_from_bag(path: str | Path, topic: str = GROUND_TRUTH_TOPIC) -> list[GroundTruth]:
    """The ground-truth labels of a bag, in time order."""
    return [_ground_truth(m.msg) for m in read_bag(path, [topic])]


def _absolute(name: str) -> str:
    return name if name.startswith("/") else "/" + name.lstrip("~/")


def match_label(window: UtteranceWindow, truth: list[GroundTruth],
                by_id: dict[str, GroundTruth] | None = None) -> str | None:
    """Ground-truth class of ``window``: by ``utterance_id``, else the utterance overlapping it most, else None.

    Args:
        by_id: ``{utterance_id: GroundTruth}`` of ``truth`` (built when ``None``).
    """
    if by_id is None:
        by_id = {g.utterance_id: g for g in truth if g.utterance_id}
    if window.utterance_id and window.utterance_id in by_id:
        return by_id[window.utterance_id].label
    best, overlap = None, 0.0
    for g in truth:
        o = min(window.end, g.end) - max(window.start, g.start)
        if o > overlap:
            best, overlap = g, o
    return best.label if best is not None else None


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
                          windower: UtteranceWindower | None = None) -> Iterator[UtteranceWindow]:
    """Yield the windows of a bag in emission order, each as soon as the windower emits it.

    Arguments as :func:`windows_from_bag` (without ground truth). Use this with a windower
    whose sink is a streaming feature cache and process each window before the next
    message is read, as the node does.

    Raises:
        FileNotFoundError: no such bag. Undecodable messages are logged and counted, not raised.
    """
    topics = topics or TopicsConfig()
    w = windower if windower is not None else UtteranceWindower(cfg or WindowingConfig(), sample_rate)
    t_img, t_aud = _absolute(topics.image), _absolute(topics.audio)
    t_tr, t_txt = _absolute(topics.transcript), _absolute(topics.text)
    wanted = [t_img, t_aud, t_tr, t_txt]
    bad = 0
    for m in read_bag(path, wanted):
        msg, now = m.msg, None
        try:
            if m.topic == t_img and m.msgtype == "sensor_msgs/msg/Image":
                now = stamp_to_seconds(msg.header.stamp)
                check_image_layout(msg.height, msg.width, msg.encoding, msg.step, msg.data)
                if not w.thin_frame(now):  # frames the thinning drops are not decoded (as in the node)
                    w.add_frame(now, image_to_rgb(msg.height, msg.width, msg.encoding, msg.is_bigendian,
                                                  msg.step, msg.data))
            elif m.topic == t_aud and m.msgtype.endswith("/AudioChunk"):
                now = stamp_to_seconds(msg.header.stamp)
                w.add_audio(now, audio_chunk_to_float(msg.sample_rate, msg.channels, msg.encoding, msg.data),
                            msg.sample_rate)
            elif m.topic == t_tr and m.msgtype.endswith("/Transcript"):
                now = stamp_to_seconds(msg.header.stamp)
                w.add_transcript(msg.text, stamp_to_seconds(msg.start), stamp_to_seconds(msg.end),
                                 bool(msg.is_final), stamp=now, utterance_id=msg.utterance_id,
                                 dialogue_id=msg.dialogue_id, language=msg.language,
                                 confidence=float(msg.confidence), speaker_id=msg.speaker_id)
            elif m.topic == t_txt and m.msgtype == "std_msgs/msg/String":
                now = m.timestamp_ns * 1e-9
                w.add_transcript(msg.data, 0.0, 0.0, True, stamp=now)
            else:
                continue
        except (ImageDecodeError, AudioDecodeError) as e:
            bad += 1
            if bad <= 5:
                log.warning("%s at %d ns cannot be decoded: %s", m.topic, m.timestamp_ns, e)
            continue
        yield from w.poll(now)
    yield from w.flush()
    if bad:
        log.warning("%d messages of %s could not be decoded", bad, path)

