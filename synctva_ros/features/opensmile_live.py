"""openSMILE low-level descriptors of a continuous audio stream, computed as the audio arrives.

:class:`LiveOpenSmile` keeps one openSMILE instance running on a stream through the SMILEapi
external audio source and sink (``opensmile.core.lib.OpenSMILE``; the ``opensmile`` Python
package uses the same components for ``process_signal``, with a whole signal written at once).
Audio is written chunk by chunk; openSMILE runs in its own thread and hands every LLD frame to
a callback as soon as it is final.

Measured here (openSMILE 2.6, eGeMAPSv02, 16 kHz, test/features/test_opensmile_live.py):

* the frames are **bit-identical** to ``Smile.process_signal`` over the same (whole) signal;
* a frame arrives about 0.1 s (0.09-0.12 s) after the audio that completes it;
* about 0.04 s of CPU per second of audio, and about 2 % of a core while waiting for audio;
* memory: some of the feature set's data-memory levels grow with the stream (RSS +100 MB after
  400 s, +390 MB after 1600 s), so a long-lived stream must be handed over to a fresh instance
  from time to time; :class:`synctva_ros.streaming.audio_context.ContextAudio` does that.

The wave level is a 2 s ring buffer (our source component configuration instead of the
package's dynamically growing one); :meth:`LiveOpenSmile.write` waits while it is full.
"""

from __future__ import annotations

import atexit
import logging
import os
import tempfile
import threading
import time
import warnings
import weakref
from typing import Callable

import numpy as np

__all__ = ["LiveOpenSmile", "LiveOpenSmileError"]

log = logging.getLogger(__name__)

_SOURCE_CONF = """\
[componentInstances:cComponentManager]
instance[extsource].type=cExternalAudioSource

[extsource:cExternalAudioSource]
writer.dmLevel=wave
writer.levelconf.growDyn=0
writer.levelconf.isRb=1
writer.levelconf.nT={ring}
sampleRate=\\cm[sampleRate{{16000}}:sample rate]
nBits=\\cm[nBits{{16}}:sample bits]
channels=\\cm[channels{{1}}:channel size]
"""
_conf_lock = threading.Lock()
_conf_paths: dict[int, str] = {}
#: Every open instance: closed at interpreter exit, because a daemon thread still inside openSMILE's
#: C++ run loop when Python finalises aborts the process ("FATAL: exception not rethrown").
_open: "weakref.WeakSet[LiveOpenSmile]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for live in list(_open):
        live.close()
    for path in _conf_paths.values():
        try:
            os.unlink(path)
        except OSError:
            pass


class LiveOpenSmileError(RuntimeError):
    """openSMILE could not start on a stream, or its thread stopped."""


def _source_conf(ring: int) -> str:
    """Path of an external-audio-source configuration with a ``ring``-sample ring buffer (one per process)."""
    with _conf_lock:
        path = _conf_paths.get(ring)
        if path is None or not os.path.exists(path):
            fd, path = tempfile.mkstemp(prefix="synctva_extsource_", suffix=".conf.inc")
            with os.fdopen(fd, "w") as fh:
                fh.write(_SOURCE_CONF.format(ring=int(ring)))
            _conf_paths[ring] = path
        return path


class LiveOpenSmile:
    """One running openSMILE LLD extractor on a continuous stream.

    Args:
        feature_set: name of an ``opensmile.FeatureSet`` (``eGeMAPSv02``, ``ComParE_2016``, ...).
        sample_rate: Hz of the written audio.
        on_frame: called from openSMILE's thread as ``on_frame(k, lld, duration_s)`` for frame
            ``k`` (its start is ``k`` hops, 10 ms, after the first written sample), ``lld`` the
            ``(F,)`` float32 LLD vector (a copy; NaN as openSMILE gives it), ``duration_s`` the
            frame's length as openSMILE reports it.
        ring_s: seconds of audio openSMILE buffers before :meth:`write` has to wait.

    Raises:
        LiveOpenSmileError: the installed ``opensmile`` package lacks the SMILEapi pieces
            used here, or openSMILE refused the configuration.
    """

    def __init__(self, feature_set: str, sample_rate: int, on_frame: Callable[[int, np.ndarray, float], None],
                 ring_s: float = 2.0) -> None:
        try:
            import opensmile
            from opensmile.core.config import config as smile_config

            smile = opensmile.Smile(feature_set=opensmile.FeatureSet[feature_set],
                                    feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
            options = smile._options()  # the package's own sink/level options, as process_signal uses
            options.update(source=_source_conf(int(ring_s * sample_rate)), sampleRate=int(sample_rate), nBits=16)
            self._smile = smile._smile(options)
            self._source = smile_config.EXTERNAL_SOURCE_COMPONENT
            self._smile.external_sink_set_callback_ex(smile_config.EXTERNAL_OUTPUT_COMPONENT, self._on_data)
        except (ImportError, AttributeError, KeyError, TypeError) as exc:
            raise LiveOpenSmileError(f"this opensmile package cannot stream ({type(exc).__name__}: {exc}); "
                                     "use features.streaming_audio=exact") from exc
        except Exception as exc:  # OpenSmileException: configuration refused
            raise LiveOpenSmileError(f"openSMILE could not start a live {feature_set} extractor: {exc}") from exc
        self.sample_rate = int(sample_rate)
        self.hop_s = 0.01
        self._on_frame = on_frame
        self.samples_written = 0
        self._closed = False
        self._error: BaseException | None = None
        self._close_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="synctva_opensmile", daemon=True)
        self._thread.start()
        _open.add(self)

    def _run(self) -> None:
        try:
            self._smile.run()
        except BaseException as exc:  # reported by the next write()
            self._error = exc

    def _on_data(self, data: np.ndarray, meta) -> None:
        k = int(round(meta.time / self.hop_s))
        self._on_frame(k, np.array(data, dtype=np.float32).reshape(-1), float(meta.lengthSec))

    @property
    def alive(self) -> bool:
        """Whether openSMILE's thread still runs."""
        return self._thread.is_alive()

    def write(self, x: np.ndarray, timeout_s: float = 5.0) -> None:
        """Append ``(S,)`` float32 samples in [-1, 1] to the stream.

        Converted to 16-bit PCM exactly as ``opensmile.Smile.process_signal`` does
        (``(x * 32768).astype(int16)``), so the frames equal a whole-signal run. Waits while
        openSMILE's ring buffer is full.

        Raises:
            LiveOpenSmileError: the stream is closed, openSMILE's thread stopped, or the ring
                buffer stayed full for ``timeout_s``.
        """
        if self._closed:
            raise LiveOpenSmileError("write on a closed stream")
        pcm = (np.asarray(x, dtype=np.float32) * 32768).astype(np.int16).tobytes()
        deadline = time.monotonic() + timeout_s
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            while not self._smile.external_audio_source_write_data(self._source, pcm):
                if not self.alive:
                    raise LiveOpenSmileError(f"openSMILE's thread stopped: {self._error}")
                if time.monotonic() > deadline:
                    raise LiveOpenSmileError(f"openSMILE took no audio for {timeout_s} s")
                time.sleep(0.001)
        self.samples_written += len(pcm) // 2

    def close(self, timeout_s: float = 10.0) -> None:
        """End the stream (openSMILE flushes its last frames through ``on_frame``) and free it.

        Idempotent and thread-safe: a second caller waits for the first to finish.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._close(timeout_s)
            _open.discard(self)

    def _close(self, timeout_s: float) -> None:
        try:
            self._smile.external_audio_source_set_eoi(self._source)
        except Exception as exc:  # pragma: no cover - freeing below still happens
            log.debug("set_eoi failed: %s", exc)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("openSMILE did not finish within %.1f s; aborting it", timeout_s)
            self._smile.abort()
            self._thread.join(timeout_s)
            if self._thread.is_alive():  # freeing a running instance would crash the process
                log.error("openSMILE did not stop after abort; leaking the instance")
                return
        self._smile.free()
