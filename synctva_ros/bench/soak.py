"""The soak (issue 14): the real node on the looped demo bag for a long time; its memory and its dropped windows.

``scripts/soak.py`` runs it (CI does not) through :func:`synctva_ros.ros.soak.run_soak`. Three parties, as in
``synctva demo`` (:mod:`synctva_ros.ros.demo`): the emotion node (``emotion_node``, its own process, ``use_sim_time``,
camera and microphone subscribed reliably, the shipped ``config/emotion.yaml``), the bag replayed in a loop with its
timing scaled by ``rate`` (:func:`~synctva_ros.ros.replay.replay_bag` in a thread of this process, with ``/clock``), and
a recorder in this process (``/emotion_state``, ``/diagnostics``).

Measured:

* **RSS** of the node process (``VmRSS`` of ``/proc/<pid>/status``, MB) and its CPU seconds, every
  ``sample_s`` (10 s) of wall time, with the node's diagnostics counters at that moment.
* **Warm-up** ends at the first sample after the bag's first restart (``windower.time_resets`` >= 1, so one
  whole loop has gone through every cache); growth = (last RSS - warm-up RSS) / warm-up RSS. RSS swings by
  about 100 MB within a loop (the 30 s frame buffer fills and empties at each restart), so single samples are
  noisy: the **per-loop peaks** (highest RSS of each loop, the loops told apart by ``windower.time_resets``)
  are compared too, the last complete loop's against the second loop's (the first after warm-up).
* **Bag time covered**: complete loops x the bag's length, plus the part of the last loop that was published
  (by message count), seconds of sensor time; the **replay rate** achieved is that over the wall time.
* **Windows**: per utterance id of the bag, the EmotionStates received against the loops completed;
  ``missing`` counts the utterance/loop pairs without a state (a dropped window, whatever dropped it); the
  node's own counters say where: ``count.windows_dropped`` (inference queue full),
  ``windower.dropped_windows`` (too many pending), ``count.pipeline_errors``.
* **Resets**: ``windower.time_resets`` against the bag's restarts (one time jump, one reset), and the
  stragglers of the old loop dropped (``windower.stale_*``).

This module holds the accounting (:func:`read_proc`, :func:`proc_status_mb`, :func:`rss_growth`,
:func:`window_accounting`, :func:`summary_lines`), which needs no ROS; :func:`synctva_ros.ros.soak.run_soak` runs
the processes (rclpy and the built messages).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = ["SOAK_TOPICS", "DIAG_KEYS", "proc_status_mb", "read_proc", "rss_growth", "loop_peaks", "window_accounting",
           "summary_lines"]

#: Topics of the demo bag the soak replays (the node's inputs).
SOAK_TOPICS = ("/audio", "/camera/image_raw", "/speech")
#: Diagnostics counters kept with every RSS sample.
DIAG_KEYS = ("count.image_in", "count.audio_in", "count.transcript_in", "count.windows", "count.published",
             "count.windows_dropped", "count.pipeline_errors", "windower.dropped_windows", "windower.time_resets",
             "windower.stale_frames", "windower.stale_audio", "windower.stale_transcripts",
             "windower.straggler_windows", "windower.future_frames", "windower.future_audio", "windower.late_frames",
             "windower.late_audio", "queue")


def proc_status_mb(pid: int, keys: Sequence[str]) -> dict[str, float]:
    """The kB fields ``keys`` (e.g. ``VmRSS``, ``RssAnon``) of ``/proc/<pid>/status`` in MB (2**20 bytes).

    Returns:
        ``{key: MB}`` for the keys found; empty when the file cannot be read or parsed (no such process, not
        Linux).
    """
    wanted = {f"{k}:": k for k in keys}
    out: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = wanted.get(line.split(None, 1)[0] if line else "")
            if key is not None:
                out[key] = int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        return {}
    return out


def read_proc(pid: int) -> tuple[float | None, float | None]:
    """``(rss_mb, cpu_s)`` of a process (Linux ``/proc``): resident set size in MB (2**20 bytes) and user +
    system CPU seconds of all its threads; ``None`` for what cannot be read (no such process, not Linux)."""
    cpu = None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    return proc_status_mb(pid, ("VmRSS",)).get("VmRSS"), cpu


def rss_growth(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """RSS after warm-up and at the end of a soak.

    Args:
        samples: in time order, each with ``wall_s`` (seconds since the replay started), ``rss_mb`` and
            ``diag`` (``windower.time_resets`` as a string or int).

    Returns:
        ``{"warmup": sample | None, "last": sample | None, "growth_pct": float | None, "max_rss_mb",
        "slope_mb_per_h", "warmup_peak_mb", "growth_from_peak_pct"}``: the warm-up sample is the first one
        after the first time reset (one loop of the bag done); growth and slope (least squares over the
        samples after warm-up, MB per hour of wall time) are ``None`` without a warm-up sample and at least
        one later sample. RSS swings within a loop, so the growth from the highest sample before the second
        reset (the first two loops) is given too, once there was a second reset.
    """
    good = [s for s in samples if s.get("rss_mb") is not None]
    resets = [int(s.get("diag", {}).get("windower.time_resets", 0) or 0) for s in good]
    warm = next((s for s, n in zip(good, resets) if n >= 1), None)
    last = good[-1] if good else None
    out: dict[str, Any] = {"warmup": warm, "last": last, "growth_pct": None, "slope_mb_per_h": None,
                           "max_rss_mb": max((s["rss_mb"] for s in good), default=None),
                           "warmup_peak_mb": None, "growth_from_peak_pct": None}
    after = [s for s in good if warm is not None and s["wall_s"] >= warm["wall_s"]]
    if warm is not None and len(after) >= 2:
        out["growth_pct"] = 100.0 * (after[-1]["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"]
        if max(resets) >= 2:  # RSS swings by ~100 MB within a loop: also from the peak of the first two loops
            peak = max(s["rss_mb"] for s, n in zip(good, resets) if n < 2)
            out["warmup_peak_mb"] = peak
            out["growth_from_peak_pct"] = 100.0 * (after[-1]["rss_mb"] - peak) / peak
        ts = [s["wall_s"] for s in after]
        ys = [s["rss_mb"] for s in after]
        mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
        var = sum((t - mt) ** 2 for t in ts)
        if var > 0:
            out["slope_mb_per_h"] = 3600.0 * sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / var
    return out


def loop_peaks(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Highest RSS of each loop of the bag, and the growth of the last complete loop's peak over the second's.

    Args:
        samples: as :func:`rss_growth`; a loop is the samples with the same ``windower.time_resets``.

    Returns:
        ``{"peaks_mb": [loop 0 peak, loop 1 peak, ...], "peak_growth_pct": float | None}``: the last loop is
        left out of the growth (it may be partial); ``None`` until there are three complete loops.
    """
    peaks: dict[int, float] = {}
    for s in samples:
        if s.get("rss_mb") is None:
            continue
        n = int(s.get("diag", {}).get("windower.time_resets", 0) or 0)
        peaks[n] = max(peaks.get(n, 0.0), float(s["rss_mb"]))
    ordered = [peaks[k] for k in sorted(peaks)]
    complete = ordered[:-1]
    growth = 100.0 * (complete[-1] - complete[1]) / complete[1] if len(complete) >= 3 else None
    return {"peaks_mb": ordered, "peak_growth_pct": growth}


def window_accounting(utterance_ids: Sequence[str], received: Mapping[str, int], loops_done: int) -> dict[str, int]:
    """EmotionStates received against the loops of the bag completed.

    Args:
        utterance_ids: the bag's utterances (one window each per loop).
        received: EmotionStates received per utterance id (ids not in the bag are counted as ``unknown``).
        loops_done: complete loops replayed (a partial last loop may add one state per id, never expected).

    Returns:
        ``{"expected", "received", "missing", "extra", "unknown"}``: ``missing`` = utterance/loop pairs
        without a state (sum over ids of ``loops_done - received``, when positive); ``extra`` = states beyond
        ``loops_done + 1`` for an id (duplicates).
    """
    ids = set(utterance_ids)
    missing = sum(max(0, loops_done - received.get(u, 0)) for u in ids)
    extra = sum(max(0, received.get(u, 0) - loops_done - 1) for u in ids)
    return {"expected": loops_done * len(ids), "received": sum(received.values()), "missing": missing,
            "extra": extra, "unknown": sum(n for u, n in received.items() if u not in ids)}


def _int(diag: Mapping[str, Any], key: str) -> int:
    try:
        return int(diag.get(key, 0) or 0)
    except (TypeError, ValueError):
        return 0


def summary_lines(doc: Mapping[str, Any]) -> list[str]:
    """The soak's printed summary (also in ``soak.json``'s ``summary``), from :func:`run_soak`'s document."""
    bag, mem, win, diag = doc["bag"], doc["rss"], doc["windows"], doc["diag_last"]
    lines = [f"SOAK: {bag['covered_s']:.0f} s of bag time ({bag['loops_done']} complete loops of "
             f"{bag['loop_s']:.1f} s) in {doc['wall_s']:.0f} s of wall time: replay rate {bag['rate_achieved']:.2f}x "
             f"(asked {doc['rate']:g}x)"]
    if mem["warmup"] is not None and mem["growth_pct"] is not None:
        slope = mem["slope_mb_per_h"]
        lines.append(f"node RSS: {mem['warmup']['rss_mb']:.0f} MB after warm-up (at {mem['warmup']['wall_s']:.0f} s), "
                     f"{mem['last']['rss_mb']:.0f} MB at the end ({mem['last']['wall_s']:.0f} s): "
                     f"{mem['growth_pct']:+.1f} %, max {mem['max_rss_mb']:.0f} MB"
                     + (f", trend {slope:+.0f} MB per hour of wall time" if slope is not None else "")
                     + (f"; from the first two loops' peak {mem['warmup_peak_mb']:.0f} MB: "
                        f"{mem['growth_from_peak_pct']:+.1f} %" if mem.get("warmup_peak_mb") is not None else ""))
    else:
        lines.append("node RSS: no warm-up sample (the bag never restarted) or too few samples")
    peaks = mem.get("loop_peaks") or {}
    if peaks.get("peak_growth_pct") is not None:
        p = peaks["peaks_mb"]
        lines.append(f"node RSS per-loop peaks: {p[1]:.0f} MB in loop 2, {p[-2]:.0f} MB in the last complete loop "
                     f"({len(p) - 1}): {peaks['peak_growth_pct']:+.1f} %; "
                     f"range {min(p[1:-1]):.0f}-{max(p[1:-1]):.0f} MB")
    dropped = _int(diag, "count.windows_dropped") + _int(diag, "windower.dropped_windows")
    lines.append(f"windows: {win['received']} EmotionStates for {win['expected']} expected "
                 f"({bag['loops_done']} loops x {doc['utterances']} utterances); missing {win['missing']}, "
                 f"extra {win['extra']}; node counters: "
                 f"windows_dropped {_int(diag, 'count.windows_dropped')}, windower.dropped_windows "
                 f"{_int(diag, 'windower.dropped_windows')}, pipeline_errors {_int(diag, 'count.pipeline_errors')}")
    lines.append(f"time resets {_int(diag, 'windower.time_resets')} for {doc['restarts']} restarts of the bag; "
                 f"stale frames {_int(diag, 'windower.stale_frames')}, audio {_int(diag, 'windower.stale_audio')}, "
                 f"transcripts {_int(diag, 'windower.stale_transcripts')} (of which windowed from the held old "
                 f"timeline: {_int(diag, 'windower.straggler_windows')})")
    lines.append(f"node received {_int(diag, 'count.image_in')} of {bag['published'].get('/camera/image_raw', 0)} "
                 f"frames, {_int(diag, 'count.audio_in')} of {bag['published'].get('/audio', 0)} audio chunks, "
                 f"{_int(diag, 'count.transcript_in')} of {bag['published'].get('/speech', 0)} transcripts; "
                 f"node CPU {doc['node_cpu_cores']:.2f} cores on average")
    if doc.get("replay_failed") or doc.get("replay_error"):
        lines.append(f"replay: refused by the middleware {doc.get('replay_failed')}; error {doc.get('replay_error')}")
    growth = peaks["peak_growth_pct"] if peaks.get("peak_growth_pct") is not None else mem["growth_pct"]
    ok = growth is not None and growth < 5.0 and win["missing"] == 0 and dropped == 0
    lines.append(f"verdict over {bag['covered_s']:.0f} s of bag time"
                 + (" (less than the hour asked)" if bag["covered_s"] < 3600.0 else "") + ": "
                 + ("RSS growth < 5 % and no window dropped" if ok else "NOT met (see above)")
                 + (" (growth judged by the per-loop peaks)" if peaks.get("peak_growth_pct") is not None else ""))
    return lines

