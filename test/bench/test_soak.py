"""The soak's accounting (synctva_ros.bench.soak): RSS growth after warm-up, windows against loops, the summary.

The soak itself (scripts/soak.py: the node on the looped demo bag for many minutes) is not run here.
"""

from __future__ import annotations

import os

import pytest

from synctva_ros.bench.soak import loop_peaks, proc_status_mb, read_proc, rss_growth, summary_lines, \
    window_accounting


def sample(t: float, rss: float, resets: int) -> dict:
    return {"wall_s": t, "rss_mb": rss, "cpu_s": t / 2, "diag": {"windower.time_resets": str(resets)}}


def test_read_proc_of_this_process_and_of_none():
    rss, cpu = read_proc(os.getpid())
    assert rss is not None and rss > 10 and cpu is not None and cpu > 0
    assert read_proc(2**22 + 12345) == (None, None)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux /proc")
def test_proc_status_fields_in_mb():
    got = proc_status_mb(os.getpid(), ("VmRSS", "RssAnon", "NoSuchField"))
    assert set(got) == {"VmRSS", "RssAnon"} and 0 < got["RssAnon"] <= got["VmRSS"]
    assert proc_status_mb(2**22 + 12345, ("VmRSS",)) == {}


def test_growth_is_measured_from_the_first_sample_after_the_first_restart():
    samples = [sample(0, 500, 0), sample(10, 900, 0), sample(20, 1000, 1), sample(30, 1010, 1),
               sample(40, 1030, 2), {"wall_s": 50, "rss_mb": None, "diag": {}}]
    g = rss_growth(samples)
    assert g["warmup"]["wall_s"] == 20 and g["last"]["wall_s"] == 40
    assert g["growth_pct"] == pytest.approx(3.0) and g["max_rss_mb"] == 1030
    assert g["slope_mb_per_h"] == pytest.approx(3600 * 1.5)  # least squares over 1000, 1010, 1030 at 10 s steps
    assert g["warmup_peak_mb"] == 1010 and g["growth_from_peak_pct"] == pytest.approx(100 * 20 / 1010)


def test_no_growth_figure_without_a_restart_or_a_later_sample():
    assert rss_growth([sample(0, 500, 0), sample(10, 600, 0)])["growth_pct"] is None
    assert rss_growth([sample(0, 500, 0), sample(10, 600, 1)])["growth_pct"] is None
    assert rss_growth([])["warmup"] is None


def test_windows_missing_extra_and_unknown():
    ids = ["a", "b", "c"]
    acc = window_accounting(ids, {"a": 3, "b": 2, "c": 5, "zzz": 1}, loops_done=3)
    assert acc == {"expected": 9, "received": 11, "missing": 1, "extra": 1, "unknown": 1}
    # a partial last loop may add one state per id without being expected
    assert window_accounting(ids, {"a": 4, "b": 4, "c": 3}, loops_done=3)["missing"] == 0


def test_summary_says_what_was_measured_and_the_verdict():
    samples = [sample(0, 900, 0), sample(10, 1000, 1), sample(20, 1010, 2)]
    doc = {"rate": 10.0, "wall_s": 20.0, "utterances": 2, "restarts": 2, "node_cpu_cores": 0.5,
           "bag": {"covered_s": 200.0, "loops_done": 2, "loop_s": 77.4, "rate_achieved": 10.0,
                   "published": {"/camera/image_raw": 100, "/audio": 200, "/speech": 4}},
           "rss": rss_growth(samples), "windows": window_accounting(["a", "b"], {"a": 2, "b": 2}, 2),
           "diag_last": {"windower.time_resets": "2", "count.image_in": "100", "count.audio_in": "200",
                         "count.transcript_in": "4"}}
    lines = summary_lines(doc)
    assert lines[0].startswith("SOAK: 200 s of bag time (2 complete loops")
    assert "+1.0 %" in lines[1] and "missing 0" in lines[2] and "time resets 2 for 2 restarts" in lines[3]
    assert lines[-1].endswith("RSS growth < 5 % and no window dropped")
    doc["windows"] = window_accounting(["a", "b"], {"a": 1, "b": 2}, 2)
    assert summary_lines(doc)[-1].endswith("NOT met (see above)")


def test_loop_peaks_compare_the_last_complete_loop_with_the_second():
    samples = [sample(0, 500, 0), sample(10, 900, 0), sample(20, 1000, 1), sample(30, 950, 1), sample(40, 1010, 2),
               sample(50, 990, 2), sample(60, 1030, 3), {"wall_s": 70, "rss_mb": None, "diag": {}},
               sample(80, 2000, 4)]  # the last loop may be partial: left out of the growth
    p = loop_peaks(samples)
    assert p["peaks_mb"] == [900, 1000, 1010, 1030, 2000]
    assert p["peak_growth_pct"] == pytest.approx(3.0)
    assert loop_peaks(samples[:5])["peak_growth_pct"] is None  # loops 0-2, loop 2 partial: two complete


def test_the_verdict_follows_the_per_loop_peaks_when_there_are_enough_loops():
    # the warm-up sample falls in the trough after a restart (the frame buffer just emptied)
    samples = [sample(0, 900, 0), sample(10, 880, 1), sample(20, 1020, 1), sample(30, 1010, 2), sample(40, 1025, 3),
               sample(50, 1021, 4)]
    doc = {"rate": 1.0, "wall_s": 50.0, "utterances": 1, "restarts": 4, "node_cpu_cores": 0.3,
           "bag": {"covered_s": 50.0, "loops_done": 4, "loop_s": 10.0, "rate_achieved": 1.0, "published": {}},
           "rss": {**rss_growth(samples), "loop_peaks": loop_peaks(samples)},
           "windows": window_accounting(["a"], {"a": 4}, 4), "diag_last": {}}
    lines = summary_lines(doc)
    assert doc["rss"]["growth_pct"] == pytest.approx(100 * 141 / 880)  # from the trough: +16 %
    assert any(line.startswith("node RSS per-loop peaks: 1020 MB in loop 2, 1025 MB in the last complete loop (4): "
                               "+0.5 %") for line in lines), lines
    assert lines[-1].endswith("RSS growth < 5 % and no window dropped (growth judged by the per-loop peaks)")
