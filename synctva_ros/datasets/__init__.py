"""synctva_ros.datasets"""
