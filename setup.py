"""pip route (editable venv installs). colcon builds the package with ament_cmake (CMakeLists.txt)."""

from setuptools import setup

setup()
