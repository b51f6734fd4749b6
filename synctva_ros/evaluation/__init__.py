"""synctva_ros.evaluation"""
