"""A real Triton server (PyTriton) whose models answer wrongly, for test_triton_backend.py (run as a script).

    python bad_triton_server.py --repository REPO --grpc-port P --http-port Q

Serves, next to nothing else, three models with the tensors of REPO's ``synctva_fusion`` but:

* ``bad_shape``: outputs declared ``[-1, -1]`` (Triton lets any shape through) and ``logits`` with one class too few;
* ``bad_dtype``: ``logits`` declared and returned as FP64;
* ``other_model``: right names, dtypes and shapes, but the classes in reverse order (another checkpoint's answer).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

import numpy as np

from synctva_ros.backends.triton_repository import TensorSpec, read_repository_info
from synctva_ros.backends.triton_server import OnnxModel, serve


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repository", required=True)
    ap.add_argument("--grpc-port", type=int, required=True)
    ap.add_argument("--http-port", type=int, required=True)
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    m = read_repository_info(a.repository)["models"]["synctva_fusion"]
    spec, good = m["spec"], OnnxModel(m["path"], m["spec"], threads=1)

    def bad_shape(requests):
        return [{"logits": np.ascontiguousarray(o["logits"][..., :-1]), "contributions": o["contributions"]}
                for o in good(requests)]

    def bad_dtype(requests):
        return [{"logits": o["logits"].astype(np.float64), "contributions": o["contributions"]} for o in good(requests)]

    def other_model(requests):
        return [{"logits": np.ascontiguousarray(o["logits"][..., ::-1]), "contributions": o["contributions"]}
                for o in good(requests)]

    loose = tuple(TensorSpec(t.name, t.datatype, (-1, -1)) for t in spec.outputs)
    f64 = (TensorSpec("logits", "FP64", spec.outputs[0].dims), spec.outputs[1])
    models = {"bad_shape": (dataclasses.replace(spec, name="bad_shape", outputs=loose), bad_shape),
              "bad_dtype": (dataclasses.replace(spec, name="bad_dtype", outputs=f64), bad_dtype),
              "other_model": (dataclasses.replace(spec, name="other_model"), other_model)}
    return serve(a.repository, grpc_port=a.grpc_port, http_port=a.http_port, models=models)


if __name__ == "__main__":
    sys.exit(main())
