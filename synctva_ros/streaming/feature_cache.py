"""The windower's feature sink: audio and visual features computed while an utterance is still going.

:class:`StreamingFeatureCache` is what the windower hands every kept audio chunk and camera frame
to (:class:`~synctva_ros.windowing.sink.StreamSink`) and what the pipeline asks for a closed
window's audio and visual features and face evidence. It owns one audio stream of the configured mode
(:mod:`~synctva_ros.streaming.audio_modes`: ``"context"`` or ``"exact"``, chosen once here), a
:class:`~synctva_ros.streaming.visual_cache.VisualCache`, a
:class:`~synctva_ros.streaming.face_cache.FaceEvidenceCache` (the facial-expression expert, when on) and,
after :meth:`~StreamingFeatureCache.start`, the thread that feeds them.

Fallbacks (counted in :attr:`StreamingFeatureCache.stats` as ``audio_batch:<reason>``): the
window's audio is not covered by the current segment (gap, reset, sample-rate mismatch, started
before the cache), too short to have a cached middle (exact) or to pool (context, < 5 frames),
its frames did not arrive within ``drain_timeout_s``, or it is empty/non-finite: the batch
extractor runs.

Threading: ``on_audio``/``on_frame`` (sensor callbacks) and ``features_for`` (the processing
thread) may run in different threads; the audio stream and the visual cache guard their state
with their own locks. Without :meth:`~StreamingFeatureCache.start`, the work is done in the
caller's thread (deterministic; what offline evaluation uses). After
:meth:`~StreamingFeatureCache.start` (what the node does), ``on_audio``/``on_frame`` only queue
the data and a background thread does the openSMILE calls and the frame encoding (ResNet-50
takes ~0.1-0.4 s per frame on a CPU core, which must not stall a ROS callback); audio is
processed before frames. ``features_for`` first waits (at most ``drain_timeout_s``) for the audio
queued so far; frames not encoded yet are encoded at close. When the queues are full the oldest
item is dropped (``stats["queue_dropped"]``): a dropped chunk starts a new audio segment, so later
windows fall back to the batch extractor rather than use wrong frames. :meth:`~StreamingFeatureCache.reset`
bumps a generation number: queued items of an older generation are never applied.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from typing import Any, Callable, Mapping

import numpy as np

from synctva_ros.core.batch import ModalityFeatures, UtteranceFeatures
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.features.base import FeatureExtractor
from synctva_ros.features.faces.evidence import FaceEvidence, FaceEvidenceExtractor
from synctva_ros.streaming.audio_modes import DEFAULT_AUDIO_MODE, build_audio_stream
from synctva_ros.streaming.audio_stream import LEFT_CONTEXT_S
from synctva_ros.streaming.face_cache import FaceEvidenceCache
from synctva_ros.streaming.text_prefetch import TextPrefetch
from synctva_ros.streaming.visual_cache import VisualCache

__all__ = ["StreamingFeatureCache"]

log = logging.getLogger(__name__)


class StreamingFeatureCache:
    """Audio LLD frames and visual embeddings computed while the utterance is going on.

    Args:
        extractors: ``{modality: extractor or None}`` as built by
            :func:`~synctva_ros.features.registry.build_extractors` (only ``audio``, an
            ``OpenSmileAudio``, and ``visual``, a ``ResNetVisual``, are used).
        buffer_s: seconds of audio frames and cached embeddings kept.
        block_s: exact mode: seconds of audio processed per openSMILE call while streaming.
        oversample: visual frames encoded per second = ``visual_fps * oversample``.
        exact: exact mode: only use cached LLD frames that are guaranteed equal to the batch extractor's
            (windows off the 10 ms grid fall back to the batch extractor).
        gap_tolerance_s: an audio chunk whose stamp differs from the expected continuation by
            more than this starts a new segment, seconds.
        left_context_s: audio before each streamed block (and head recomputed at close), seconds.
        exact_visual: visual: only use the embedding of the very frame the batch rule picks
            (default False: the nearest cached frame within half the encoding period is used).
        max_queue: background mode: most queued audio chunks.
        drain_timeout_s: background mode: longest wait in ``features_for`` for queued audio (and, context
            mode, for the window's live frames), seconds; may be changed on a live cache.
        max_frame_queue: background mode: most queued camera frames (a 640x480 frame is 0.9 MB; an
            encoder slower than ``visual_fps * oversample`` frames per second drops the oldest, and
            the frames a window needs are then encoded at close).
        audio_mode: ``"context"`` (one live openSMILE run; falls back to ``"exact"`` with a warning where
            the installed opensmile package cannot stream) or ``"exact"`` (block-wise, the batch values bit
            for bit); default :data:`~synctva_ros.streaming.audio_modes.DEFAULT_AUDIO_MODE`, the
            configuration's ``features.streaming_audio`` default.
        rotate_s: context mode: seconds of audio after which a live run is handed over to a fresh one.
        faces: the face stage (``features.face_expert``), processed on its own ``face_fps`` grid; None: off.

    Shapes:
        ``on_audio(stamp, samples (S,), sample_rate)``; ``on_frame(stamp, image (H, W, 3) uint8 RGB)``;
        ``features_for(window)`` -> :class:`UtteranceFeatures` with ``audio`` ``(N_a, F_a)`` and
        ``visual`` ``(N_v, F_v)`` as the batch extractors give (``text`` is left ``None``).

    Raises:
        ValueError: ``block_s <= 0``, ``oversample < 1`` or an unknown ``audio_mode``.
    """

    def __init__(self, extractors: Mapping[str, FeatureExtractor | None], buffer_s: float = 30.0,
                 block_s: float = 0.5, oversample: float = 2.0, exact: bool = True,
                 gap_tolerance_s: float = 0.02, left_context_s: float = LEFT_CONTEXT_S,
                 exact_visual: bool = False, max_queue: int = 256, drain_timeout_s: float = 0.5,
                 max_frame_queue: int = 8,
                 audio_mode: str = DEFAULT_AUDIO_MODE, rotate_s: float = 60.0,
                 faces: FaceEvidenceExtractor | None = None) -> None:
        if block_s <= 0 or oversample < 1:
            raise ValueError(f"block_s must be > 0 and oversample >= 1, got {block_s}, {oversample}")
        self.audio_ext = extractors.get("audio")
        self.visual_ext = extractors.get("visual")
        #: Counters: "audio_<how>" per served window (``audio_context``, ``audio_cache``,
        #: ``audio_batch:<reason>``, ...), "visual_hit", "visual_near", "visual_miss", "audio_reset",
        #: "queue_dropped", "drain_timeout", and the context mode's "audio_rotations", "audio_resumed",
        #: "audio_ended_runs", "audio_live_errors".
        self.stats: Counter[str] = Counter()
        #: The audio stream (``None``: no audio extractor, or functionals only).
        self.audio = build_audio_stream(audio_mode, self.audio_ext, self.stats, buffer_s=buffer_s,
                                        block_s=block_s, left_context_s=left_context_s,
                                        gap_tolerance_s=gap_tolerance_s, exact=exact, rotate_s=rotate_s)
        #: The audio mode in use (``"exact"`` where ``"context"`` was asked for but cannot stream).
        self.audio_mode = self.audio.mode if self.audio is not None else audio_mode
        #: The frame-embedding cache (``None``: no visual extractor).
        self.visual = None if self.visual_ext is None else VisualCache(
            self.visual_ext, self.stats, buffer_s=buffer_s, oversample=oversample, exact=exact_visual,
            gap_tolerance_s=gap_tolerance_s)
        #: The face-observation cache (``None``: face expert off).
        self.face = None if faces is None else FaceEvidenceCache(faces, self.stats, buffer_s=buffer_s,
                                                                 gap_tolerance_s=gap_tolerance_s)
        #: The text stage run when the final transcript arrives (``None``: off; the pipeline sets it,
        #: :mod:`~synctva_ros.streaming.text_prefetch`).
        self.text: TextPrefetch | None = None
        #: What :meth:`on_transcript` applies to the transcript's window before its text stage, as the caller applies
        #: it to the closed window (the node: the ROS4HRI person of the voice, ``PersonRegistry.attribute``);
        #: ``None``: nothing.
        self.annotate: Callable[[UtteranceWindow], UtteranceWindow] | None = None
        self.max_queue = max(1, int(max_queue))
        self.max_frame_queue = max(1, int(max_frame_queue))
        self.drain_timeout_s = float(drain_timeout_s)
        self._cond = threading.Condition()  # the queues, the generation and the audio counters below
        self._audio_q: deque[tuple[int, float, np.ndarray, int]] = deque()
        self._frame_q: deque[tuple[int, float, np.ndarray, str]] = deque()  # (gen, stamp, image, kind)
        self._gen = 0  # bumped by reset(): queued items of an older generation are ignored
        self._audio_seq = 0  # audio chunks queued so far
        self._audio_done = 0  # audio chunks processed (or discarded) so far
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ------------------------------------------------------------------ the windower's sink
    def on_audio(self, stamp: float, samples: np.ndarray, sample_rate: int) -> None:
        """Add an audio chunk (``(S,)`` float in [-1, 1] or int16) whose first sample is at ``stamp`` seconds.

        A chunk at another sample rate than the extractor's, with NaN/inf, or not continuing the
        segment within ``gap_tolerance_s`` starts a new segment (counted in ``stats["audio_reset"]``).
        After :meth:`start` the chunk is only queued.
        """
        if self.audio is None:
            return
        if self.running:
            self._enqueue(self._audio_q, (self._gen, float(stamp), samples, int(sample_rate)), is_audio=True)
        else:
            self.audio.add(float(stamp), samples, int(sample_rate), gen=self._gen)

    def on_frame(self, stamp: float, image: np.ndarray) -> None:
        """Offer a camera frame (``(H, W, 3)`` uint8 RGB at ``stamp`` s); encoded when an encoding tick is due,
        and processed by the face stage when a face tick is due (bad frames are counted there, never raised).

        After :meth:`start` the frame is only queued (once per cache whose tick is due).
        """
        stamp = float(stamp)
        kinds = [k for k, c in (("visual", self.visual), ("face", self.face)) if c is not None and c.due(stamp)]
        for kind in kinds:
            if self.running:
                self._enqueue(self._frame_q, (self._gen, stamp, image, kind), is_audio=False)
            else:
                self._add_frame(stamp, image, kind, self._gen)

    def _add_frame(self, stamp: float, image: np.ndarray, kind: str, gen: int) -> None:
        (self.visual if kind == "visual" else self.face).add(stamp, image, gen=gen)

    def on_transcript(self, window: UtteranceWindow) -> None:
        """A final transcript the windower queued a window for (``window``: its transcript and ids, no sensor
        data): its text stage starts now (:attr:`text`; nothing when off)."""
        if self.text is None:
            return
        try:
            window = window if self.annotate is None else self.annotate(window)
        except Exception as exc:  # noqa: BLE001 - the prefetch is an optimisation: the close encodes instead
            self.stats["text_prefetch_errors"] += 1
            log.warning("transcript %r not prefetched: annotating it failed (%s)", (window.transcript or "")[:40], exc)
            return
        self.text.submit(window)

    def reset(self) -> None:
        """Forget all audio and visual state, queued data included (e.g. when sensor time jumps back)."""
        if self.text is not None:
            self.text.reset()
        with self._cond:
            self._gen += 1
            gen = self._gen
            self._discard_queued()
        if self.audio is not None:
            self.audio.reset(gen)
        if self.visual is not None:
            self.visual.reset(gen)
        if self.face is not None:
            self.face.reset(gen)

    def close(self) -> None:
        """Stop the background thread and end the live openSMILE runs (the cache can be used again after)."""
        self.stop()
        self.reset()
        if self.audio is not None:
            self.audio.close()

    # ------------------------------------------------------------------ background thread
    @property
    def running(self) -> bool:
        """Whether the background thread is working (:meth:`start`)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Do the streaming work in a background thread from now on (idempotent)."""
        if self.running:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="synctva_streaming", daemon=True)
        self._thread.start()
        if self.text is not None:
            self.text.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the background thread (queued data is discarded); later calls work in the caller's thread."""
        if self.text is not None:
            self.text.stop()
        thread = self._thread
        if thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread.join(timeout_s)
        self._thread = None
        with self._cond:
            self._discard_queued()

    def _discard_queued(self) -> None:
        """Drop the queued audio and frames (caller holds ``_cond``); queued audio counts as done."""
        self._audio_done += len(self._audio_q)
        self._audio_q.clear()
        self._frame_q.clear()
        self._cond.notify_all()

    def _enqueue(self, q: deque, item: tuple, is_audio: bool) -> None:
        with self._cond:
            if len(q) >= (self.max_queue if is_audio else self.max_frame_queue):
                q.popleft()
                self.stats["queue_dropped"] += 1
                if is_audio:
                    self._audio_done += 1
            q.append(item)
            if is_audio:
                self._audio_seq += 1
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._stopping or self._audio_q or self._frame_q):
                    self._cond.wait()
                if self._stopping:
                    return
                is_audio = bool(self._audio_q)
                item = self._audio_q.popleft() if is_audio else self._frame_q.popleft()
                current = item[0] == self._gen
            try:
                if current and is_audio:
                    self.audio.add(*item[1:], gen=item[0])
                elif current:
                    self._add_frame(*item[1:], gen=item[0])
            except Exception as exc:  # a feature error must not kill the thread; the batch path still works
                log.warning("streaming %s at %.3f s failed: %s", "audio" if is_audio else "frame", item[1], exc)
            finally:
                if is_audio:
                    with self._cond:
                        self._audio_done += 1
                        self._cond.notify_all()

    def _drain_audio(self, timeout_s: float) -> None:
        """Wait until the audio queued before this call has been processed (background mode)."""
        if not self.running:
            return
        deadline = time.monotonic() + timeout_s
        with self._cond:
            target = self._audio_seq
            while self._audio_done < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.stats["drain_timeout"] += 1
                    return
                self._cond.wait(left)

    # ------------------------------------------------------------------ window close
    def wait_ready(self, window: UtteranceWindow, timeout_s: float = 10.0) -> bool:
        """Wait until the streaming work the window needs is done (queued audio processed; context mode:
        its live frames arrived; the transcripts' text stages), as it is in a live stream by the time the
        window closes.

        For benchmarks that feed a window's data faster than real time (``synctva bench``).
        Returns False when ``timeout_s`` passed first.
        """
        self._drain_audio(timeout_s)
        text = True if self.text is None else self.text.wait_idle(timeout_s)
        return (True if self.audio is None else self.audio.wait_ready(window, timeout_s)) and text

    def _audio_features(self, window: UtteranceWindow) -> tuple[ModalityFeatures | None, str]:
        if self.audio is None:
            return self.audio_ext(window), "batch:functionals_only"
        return self.audio.features(window, self.drain_timeout_s)

    def features_for(self, window: UtteranceWindow, modalities: tuple[str, ...] = ("audio", "visual"),
                     ) -> UtteranceFeatures:
        """Audio and visual features of a closed window, from the cache where it covers the window.

        Returns:
            :class:`UtteranceFeatures` with ``audio``/``visual`` set (``None`` when absent or when
            that extractor is not configured) and ``text`` ``None``; ``meta["streaming"]`` says per
            modality where the values came from (``"context"``, ``"cache"``, ``"cache:shifted"``,
            ``"k/n cached"``, ``"batch:<reason>"``), ``meta["stage_s"]`` the seconds spent per modality.
        """
        feats = UtteranceFeatures(dialogue_id=window.dialogue_id)
        how: dict[str, str] = {}
        stage_s: dict[str, float] = {}
        if "audio" in modalities and self.audio_ext is not None:
            t0 = time.perf_counter()
            self._drain_audio(self.drain_timeout_s)
            feats.audio, how["audio"] = self._audio_features(window)
            stage_s["audio"] = time.perf_counter() - t0
            self.stats["audio_" + how["audio"]] += 1
        if "visual" in modalities and self.visual is not None:
            t0 = time.perf_counter()
            feats.visual, how["visual"] = self.visual.features(window)
            stage_s["visual"] = time.perf_counter() - t0
        feats.meta["streaming"] = how
        feats.meta["stage_s"] = stage_s
        return feats

    def face_evidence_for(self, window: UtteranceWindow) -> FaceEvidence | None:
        """The face evidence of a closed window (cached observations, the rest processed now); None when the
        face stage is off. Raises nothing for bad frames."""
        return None if self.face is None else self.face.evidence(window)

    def describe(self) -> dict[str, Any]:
        """Counters, cache sizes (LLD frames cached by the audio mode, embeddings, prefetched texts not yet
        used) and queue lengths (for diagnostics)."""
        out: dict[str, Any] = {"stats": dict(self.stats),
                               "audio_frames": 0 if self.audio is None else self.audio.frame_count(),
                               "embeddings": 0 if self.visual is None else len(self.visual),
                               "face_frames": 0 if self.face is None else len(self.face),
                               "text_results": 0 if self.text is None else len(self.text)}
        with self._cond:
            out["queued_audio"], out["queued_frames"] = len(self._audio_q), len(self._frame_q)
        return out
