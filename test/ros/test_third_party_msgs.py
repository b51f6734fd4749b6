"""The installed hri_msgs / audio_common_msgs / whisper_msgs have the published packages' type hashes.

The expected RIHS01 hashes were computed by rosbags (whose hashes equal rosidl's) from the upstream
definitions: ros4hri/hri_msgs humble-devel (Expression, IdsList) and LiveSpeech as published for hri_msgs
>= 2.2.1 (docs.ros.org: header, incremental, final, float64 confidence, locale); mgonzs13/audio_common
4.0.10 and mgonzs13/whisper_ros 4.0.5 (main). They are compared with the ``type_hashes`` rosidl installed in
``share/<package>/msg/<Message>.json`` of whichever package is installed (stand-in or real).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

EXPECTED = {
    "hri_msgs/msg/LiveSpeech": "RIHS01_2cfdf359eed836b1d32ac2d62e1476f2048212e7ed79a17c0a594b04c33f8783",
    "hri_msgs/msg/Expression": "RIHS01_411b88e0604397d44775d8ec6a4bc69398fb0dfbfe864c33a40fa99ee85f1b00",
    "hri_msgs/msg/IdsList": "RIHS01_7e0812d1ac945c98fd3e393568d581ad0ab567f37b24eff633eab778c1bfe62d",
    "audio_common_msgs/msg/AudioData": "RIHS01_28873bc02f2963cbc2e6e7dbadd149384f99daddba98ddc2a7cd2550a0b9b5c3",
    "audio_common_msgs/msg/AudioInfo": "RIHS01_2418e6f9b3639c2844652701c489705b045d5b970c0674573a0f668d6af3b58b",
    "audio_common_msgs/msg/Audio": "RIHS01_56bb1432a8bc1cf3579fa7dcfa6107180f29e799b30e51a880e5591ccc789de2",
    "audio_common_msgs/msg/AudioStamped": "RIHS01_f6ad36427cfe3e7132f91509dca5a3be31b9b681f182db6e606e95e781b21611",
    "whisper_msgs/msg/Transcription": "RIHS01_24b13b9f812dd960ecc15d23de401090effb44ff774eccdad9ae7c3c5068362d",
}


@pytest.mark.parametrize("type_name", sorted(EXPECTED))
def test_installed_type_hash_is_the_published_one(type_name):
    package, _, name = type_name.split("/")
    try:
        module = importlib.import_module(f"{package}.msg")
    except ImportError:
        pytest.skip(f"{package} not installed (`make third-party-msgs` builds the stand-in)")
    # <prefix>/lib/pythonX.Y/site-packages/<package>/msg -> <prefix>/share/<package> (venv or colcon install)
    share = next((d / "share" / package for d in Path(module.__file__).resolve().parents
                  if (d / "share" / package / "msg").is_dir()), None)
    assert share is not None, f"no share/{package}/msg above {module.__file__}"
    if package == "audio_common_msgs" and not (share / "msg" / "AudioStamped.json").exists():
        pytest.skip("the ros-drivers audio_common_msgs is installed "
                    "(different messages, see third_party_msgs/README.md)")
    hashes = json.loads((share / "msg" / f"{name}.json").read_text())["type_hashes"]
    assert {h["type_name"]: h["hash_string"] for h in hashes}[type_name] == EXPECTED[type_name]


def test_rosbags_gives_the_same_hashes_from_the_stand_in_definitions():
    """The .msg files in third_party_msgs/ hash (rosbags, RIHS01) to the published packages' hashes."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    root = Path(__file__).resolve().parents[2] / "third_party_msgs"
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for type_name in EXPECTED:
        package, _, name = type_name.split("/")
        types.update(get_types_from_msg((root / package / "msg" / f"{name}.msg").read_text(), type_name))
    store.register(types)
    assert {t: store.hash_rihs01(t) for t in EXPECTED} == EXPECTED
