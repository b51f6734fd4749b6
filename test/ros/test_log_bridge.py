"""The core's ``logging`` records reach a real rclpy logger with their severity and logger name.

Run in a child process: rcutils writes to the process's stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import logging
import rclpy.logging
from synctva_ros.ros.log_bridge import CORE_LOGGER, bridge_core_logging, unbridge_core_logging

handler = bridge_core_logging(rclpy.logging.get_logger("emotion_node"))
core = logging.getLogger(CORE_LOGGER)
print("propagate while bridged:", core.propagate)
logging.getLogger("synctva_ros.windowing").warning("sensor time of %s went back", "audio")
logging.getLogger("synctva_ros.features").info("encoder loaded")
logging.getLogger("synctva_ros.features").debug("below INFO: not forwarded")
logging.getLogger("synctva_ros").error("an error")
logging.getLogger("synctva_ros").critical("a critical one")
logging.getLogger("synctva_ros").log(25, "between INFO and WARNING")
logging.getLogger("synctva_ros.windowing").warning("a second warning")
unbridge_core_logging(handler)
print("propagate after:", core.propagate, "handler attached:", handler in core.handlers)
logging.getLogger("synctva_ros.windowing").warning("after unbridge: not via ROS")
"""


def test_every_severity_is_forwarded_in_order():
    env = dict(os.environ, RCUTILS_COLORIZED_OUTPUT="0", RCUTILS_CONSOLE_OUTPUT_FORMAT="[{severity}] [{name}]: "
               "{message}", RCUTILS_LOGGING_BUFFERED_STREAM="0")
    res = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    ros = [line for line in res.stderr.splitlines() if line.startswith("[") and "[emotion_node]" in line]
    assert ros == [
        "[WARN] [emotion_node]: [synctva_ros.windowing] sensor time of audio went back",
        "[INFO] [emotion_node]: [synctva_ros.features] encoder loaded",
        "[ERROR] [emotion_node]: [synctva_ros] an error",
        "[FATAL] [emotion_node]: [synctva_ros] a critical one",
        "[INFO] [emotion_node]: [synctva_ros] between INFO and WARNING",
        "[WARN] [emotion_node]: [synctva_ros.windowing] a second warning",
    ], res.stderr
    assert "Logging error" not in res.stderr, res.stderr
    assert res.stdout.splitlines() == ["propagate while bridged: False",
                                       "propagate after: True handler attached: False"]
    assert "after unbridge: not via ROS" in res.stderr  # Python's last-resort handler, not rcutils
