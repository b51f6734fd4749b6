"""synctva_ros.ros"""
