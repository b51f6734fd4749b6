"""Faces: detection (MTCNN, Haar, Tiny Face Detector), the face-crop rule, IoU tracking, and the facial-expression
experts (fer's mini-Xception, face-api's expression net) with their real, installed weights.

Modules: :mod:`.weights` (where the files are, HDF5 and TF.js readers), :mod:`.expression`, :mod:`.mtcnn`,
:mod:`.tiny_face` (``nn.Module``s), :mod:`.loaders` (files -> modules, identities), :mod:`.detect`,
:mod:`.track`, :mod:`.experts` (the runtime :class:`~.experts.VisualExpert`).
"""
