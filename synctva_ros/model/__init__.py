"""synctva_ros.model"""
