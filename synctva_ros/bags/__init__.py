"""synctva_ros.bags"""
