"""rosbag2 files without ROS (the ``rosbags`` library): message types, writing test bags from
MELD rows (``make_bag``), reading and windowing bags (``reader``). Speech and the corpus readers
come from :mod:`synctva_ros.datasets`."""
