"""synctva_ros.training"""
