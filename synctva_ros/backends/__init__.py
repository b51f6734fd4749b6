"""synctva_ros.backends"""
