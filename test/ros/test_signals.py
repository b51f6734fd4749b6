"""SIGINT/SIGTERM -> KeyboardInterrupt while the node runs, in a child process (real signals)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import os, signal, sys
from synctva_ros.ros.signals import stop_on_signals
sig = getattr(signal, sys.argv[1])
before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
try:
    with stop_on_signals():
        os.kill(os.getpid(), sig)
        for _ in range(10**7):  # the Python-level handler runs between bytecodes
            pass
        print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
print("restored" if (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before else "changed")
"""


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("inherit_ignored", [False, True])
def test_signal_raises_keyboard_interrupt_and_handlers_are_restored(sig, inherit_ignored):
    pre = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if inherit_ignored else None
    res = subprocess.run([sys.executable, "-c", SCRIPT, sig], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         preexec_fn=pre)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["interrupted", "restored"], res.stderr


def test_sigusr1_dumps_every_thread_stack():
    script = ("import os, signal, time\nfrom synctva_ros.ros.signals import stop_on_signals\n"
              "with stop_on_signals():\n    os.kill(os.getpid(), signal.SIGUSR1)\n    time.sleep(0.5)\n"
              "print('alive')\n")
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "alive", res.stderr
    assert "Current thread" in res.stderr or "Thread 0x" in res.stderr, res.stderr
