"""The windower's counters and their rate-limited warnings.

Bad or late data never raises in the windower (rule 7 of
:mod:`synctva_ros.windowing.windower`): it is counted under one of :data:`STAT_KEYS` and
logged on logger ``synctva_ros.windowing``, the first five times per counter and then every
thousandth, so a misbehaving driver cannot flood the log.
"""

from __future__ import annotations

import logging

__all__ = ["STAT_KEYS", "WindowerCounters", "logged_at"]

log = logging.getLogger("synctva_ros.windowing")

#: Counters reported by :attr:`UtteranceWindower.stats`.
STAT_KEYS: tuple[str, ...] = (
    "frames", "audio_chunks", "transcripts", "partial_transcripts", "empty_transcripts",
    "windows", "vad_windows", "dropped_windows", "clipped_windows", "widened_windows",
    "late_frames", "late_audio", "duplicates", "out_of_order", "time_resets", "gaps",
    "rejected_frames", "rejected_audio", "rejected_transcripts", "resampled_audio",
    "evicted_frames", "evicted_audio", "unknown_end", "unknown_start", "thinned_frames",
    "future_frames", "future_audio", "future_transcripts", "negative_stamps", "zero_stamps",
    "duplicate_transcripts", "control_chars", "truncated_fields", "stale_frames", "stale_audio",
    "stale_transcripts", "straggler_windows",
)


def logged_at(n: int) -> bool:
    """Whether the ``n``-th event (1-based) of a counted warning is logged: the first five, then every
    thousandth (a flood of bad input is counted in full but cannot flood the log)."""
    return n <= 5 or n % 1000 == 0


class WindowerCounters:
    """One integer per :data:`STAT_KEYS` entry, all 0 at first (``KeyError`` for other keys)."""

    def __init__(self) -> None:
        self._n = dict.fromkeys(STAT_KEYS, 0)

    def __getitem__(self, key: str) -> int:
        return self._n[key]

    def add(self, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key``."""
        self._n[key] += n

    def clear(self) -> None:
        """Set every counter back to 0."""
        self._n = dict.fromkeys(STAT_KEYS, 0)

    def warn(self, key: str, msg: str, *args: object) -> None:
        """Count one event under ``key`` and log ``msg % args`` with the counter's name and value.

        Logged (WARNING) for the first five events of a counter and then every thousandth.
        """
        self._n[key] += 1
        n = self._n[key]
        if logged_at(n):
            log.warning("%s (%s #%d)" % (msg, key, n), *args)

    def kept(self, res: str, what: str, late_key: str, kept_key: str, stamp: float) -> bool:
        """Count a buffer insert's outcome (rules 4, 5 of :mod:`.windower`); True when the item was kept.

        Args:
            res: the buffer's answer: ``"duplicate"``, ``"too_old"``, ``"inserted"`` (out of order)
                or anything else (appended).
            what: the item, for the log (``"frame"``, ``"audio chunk"``).
            late_key, kept_key: counters of a too-old and of a kept item.
            stamp: the item's stamp (seconds), for the log.
        """
        if res == "duplicate":
            self.warn("duplicates", "duplicate %s at %.6f s dropped", what, stamp)
        elif res == "too_old":
            self.warn(late_key, "%s at %.3f s is older than the buffer horizon: dropped", what, stamp)
        else:
            self.add(kept_key)
            self.add("out_of_order", int(res == "inserted"))
            return True
        return False
