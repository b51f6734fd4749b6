"""synctva_ros: multimodal emotion recognition (Sync-TVA) for ROS 2 robots.

The package is shared between two owners: rosidl generates ``synctva_ros.msg``
(the message classes) and this source tree holds the ROS-free library core plus
the thin node in ``synctva_ros.ros``. ``extend_path`` lets both halves import side
by side whether the library lives in a colcon install, an editable pip install
or a plain checkout (see ENVIRONMENT notes in README.md, "Package layout").
This file must stay identical wherever it is installed.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
