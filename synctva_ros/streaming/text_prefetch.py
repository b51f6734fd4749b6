"""Text features computed when the final transcript arrives, before its window closes.

The windower queues a window when its final transcript arrives and closes it ``windowing.late_s`` (or more)
later, once late audio and frames had their chance. The transcript is known for that whole time, so the
text stage (tokenising and the text encoder, the largest cost at close for the quality profile on a CPU and
half of it on a GPU) can run then, as the audio and frame stages run while the utterance goes on.

:class:`TextPrefetch` is handed a transcript-only window (the windower's ``on_transcript``,
:class:`~synctva_ros.windowing.sink.StreamSink`); the pipeline's ``prepare`` gives its key, everything the
text features depend on (transcript, speaker tag, session and the dialogue context as it is now), and the job
that computes them, which runs then. At close the pipeline computes the key of the closed window and
:meth:`TextPrefetch.take` hands back the result only for an equal key (waiting for a job still running);
otherwise (the context changed in between, the person of the voice became known, nothing was prefetched) the
pipeline encodes at close as before. Both paths run the same extractor on the same inputs: the features are
the same either way, and online and offline results still agree.

Threading: after :meth:`TextPrefetch.start` the work runs in one background thread; before it (offline,
tests) in the caller's thread. Results are bounded (``max_entries``, oldest dropped) and forgotten on
:meth:`TextPrefetch.reset`; a queued job whose result was dropped or forgotten meanwhile is not run, so a flood
of transcripts costs at most ``max_entries`` encodings. Counted in the owner's ``stats``: ``text_prefetched``,
``text_prefetch_hit``, ``text_prefetch_miss`` (a window encoded at close), ``text_prefetch_errors``,
``text_prefetch_dropped``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Hashable, Sequence

from synctva_ros.core.window import UtteranceWindow
from synctva_ros.features.dialogue import Turn, window_speaker
from synctva_ros.windowing.counters import logged_at

__all__ = ["TextPrefetch", "text_job"]

log = logging.getLogger(__name__)


class TextPrefetch:
    """Text features of transcripts computed ahead of their window's close.

    Args:
        prepare: ``prepare(window) -> (key, job)`` for a window that has a transcript: ``key`` is everything its
            text features depend on as of now (the dialogue context read now), ``job()`` computes them (the
            pipeline's text stage; may raise ``ValueError``/``RuntimeError`` for bad content). Called in the
            submitting thread; cheap.
        stats: the counters to add to (:attr:`StreamingFeatureCache.stats`).
        max_entries: most results kept (not yet taken); the oldest goes first.

    Raises:
        ValueError: ``max_entries < 1``.
    """

    def __init__(self, prepare: Callable[[UtteranceWindow], tuple[Hashable, Callable[[], Any]]],
                 stats: Counter[str] | None = None, max_entries: int = 8) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.prepare = prepare
        self.stats: Counter[str] = stats if stats is not None else Counter()
        self.max_entries = int(max_entries)
        self._lock = threading.Lock()
        self._results: OrderedDict[Hashable, Future] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
        #: Wall seconds of the last job that finished (``None``: none yet); what the close no longer waits for.
        #: Written by the worker thread (a float assignment), read by ``synctva bench``.
        self.last_job_s: float | None = None

    @property
    def running(self) -> bool:
        """Whether the work runs in the background thread (:meth:`start`)."""
        return self._pool is not None

    def start(self) -> None:
        """Encode in a background thread from now on (idempotent)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synctva_text")

    def stop(self) -> None:
        """Stop the background thread after its current job (queued ones are encoded at close instead); later
        transcripts are encoded in the caller's thread."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:  # cancelled jobs: their windows are encoded at close, no one waits for them
            for f in self._results.values():
                if not f.done():
                    f.set_result(None)

    def submit(self, window: UtteranceWindow) -> None:
        """Start encoding ``window``'s transcript (in the background thread after :meth:`start`, else now).

        Never raises: a failure is logged and counted, and the window is encoded at close.
        """
        if not (window.transcript or "").strip():
            return
        try:
            key, job = self.prepare(window)
        except Exception as exc:  # noqa: BLE001 - the prefetch is an optimisation; the close path still works
            self._failed(window, exc)
            return
        done: Future = Future()
        with self._lock:
            self._results[key] = done
            self._results.move_to_end(key)
            while len(self._results) > self.max_entries:
                self._results.popitem(last=False)[1].dropped = True  # type: ignore[attr-defined]
                self.stats["text_prefetch_dropped"] += 1
            pool = self._pool
        self.stats["text_prefetched"] += 1
        if pool is None:
            self._run(window, job, done)
            return
        try:
            pool.submit(self._run, window, job, done)
        except RuntimeError:  # shut down meanwhile: here and now
            self._run(window, job, done)

    def _run(self, window: UtteranceWindow, job: Callable[[], Any], done: Future) -> None:
        if getattr(done, "dropped", False):  # dropped (a flood of transcripts) or reset while queued: nobody wants it
            done.set_result(None)
            return
        t0 = time.perf_counter()
        try:
            value = job()
            self.last_job_s = time.perf_counter() - t0
            done.set_result(value)
        except Exception as exc:  # noqa: BLE001 - any failure only costs the prefetch, never the window
            self._failed(window, exc)
            done.set_result(None)

    def _failed(self, window: UtteranceWindow, exc: BaseException) -> None:
        """Count a failed job; log it at the windower's rate (:func:`~synctva_ros.windowing.counters.logged_at`)."""
        self.stats["text_prefetch_errors"] += 1
        n = self.stats["text_prefetch_errors"]
        if logged_at(n):
            log.warning("text prefetch of %r failed (%s: %s); encoded at close instead (text_prefetch_errors #%d)",
                        (window.transcript or "")[:40], type(exc).__name__, exc, n)

    def take(self, key: Hashable, timeout_s: float = 0.5) -> Any | None:
        """The features prefetched under ``key`` (removed; waits at most ``timeout_s`` seconds for a job still
        running; the pipeline passes ``features.streaming_wait_s``), else ``None``: counted as
        ``text_prefetch_miss``, the caller encodes at close."""
        with self._lock:
            got = self._results.pop(key, None)
        value = None
        if got is not None:
            try:
                value = got.result(timeout=timeout_s)
            except Exception:  # noqa: BLE001 - timed out or cancelled at stop()
                value = None
        self.stats["text_prefetch_hit" if value is not None else "text_prefetch_miss"] += 1
        return value

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until the transcripts submitted so far are encoded (benchmarks that feed faster than real time).
        Returns False when ``timeout_s`` (one deadline for all of them) passed first."""
        with self._lock:
            pending = list(self._results.values())
        deadline = time.monotonic() + timeout_s
        try:
            for f in pending:
                f.result(timeout=max(0.0, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - timeout or cancelled
            return False
        return True

    def reset(self) -> None:
        """Forget every result (those still being encoded are not kept either)."""
        with self._lock:
            for f in self._results.values():
                f.dropped = True  # type: ignore[attr-defined]
            self._results.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._results)


def text_job(extractor: Any, window: UtteranceWindow, turns: Sequence[Turn], sentence: bool,
             top: Callable[[Any], Any] | None = None) -> tuple[Hashable, Callable[[], Any]]:
    """The key and job of ``window``'s text stage (``extractor.encode_window(window, turns, sentence=...)``, then
    ``top`` on its token features when given).

    The key holds every input of that call: the transcript, the speaker tag
    (:func:`~synctva_ros.features.dialogue.window_speaker`), the ``(speaker, text)`` of the context turns the
    encoder reads (its last ``context_turns``; none when it reads none) and ``sentence``. Equal keys give equal
    features, so a prefetched result is used only where the close would compute the same (the streaming cache's
    rule: same inputs, same features; :mod:`synctva_ros.streaming`).

    Args:
        extractor: the :class:`~synctva_ros.features.text.TextEncoder`.
        window: the window (or the windower's transcript-only window).
        turns: the session's previous turns, oldest first, as the pipeline passes them.
        sentence: whether the sentence embedding is computed (the checkpoint's pooled context).
        top: the checkpoint's fine-tuned text layers run in the text stage, ``top(ModalityFeatures) ->
            ModalityFeatures`` (:func:`~synctva_ros.backends.text_top_serving.apply_text_top` with its runner), or
            ``None`` (they run in the fusion network, or there are none).

    Returns:
        ``(key, job)``; ``job()`` returns ``(ModalityFeatures | None, (F,) sentence | None)`` and raises what
        ``encode_window`` raises.
    """
    turns = list(turns)
    k = int(getattr(extractor, "context_turns", 0) or 0)
    ctx = tuple((t.speaker, t.text) for t in turns[-k:]) if k > 0 else ()
    key = (window.transcript, window_speaker(window), ctx, bool(sentence))
    if top is None:
        return key, lambda: extractor.encode_window(window, turns, sentence=sentence)

    def job() -> Any:
        tokens, sent = extractor.encode_window(window, turns, sentence=sentence)
        return (None if tokens is None else top(tokens)), sent
    return key, job
