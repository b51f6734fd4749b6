"""Sync-TVA model (Deng et al., arXiv 2507.21395): MSDE, cross-modal graphs, fusion, losses, affect."""

from synctva_ros.model.synctva import SyncTVA

__all__ = ["SyncTVA"]
