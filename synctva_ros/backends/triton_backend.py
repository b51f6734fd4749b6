"""Triton client backend (``runtime.backend: triton``): a Triton Inference Server answers the fusion network.

One GPU server for a fleet: every robot keeps windowing, openSMILE, the encoders and pooling, and sends each
window's collated batch to the server's fusion model (:mod:`~synctva_ros.backends.triton_repository`; started
with ``synctva serve`` or NVIDIA's container). Settings: the ``triton`` configuration section
(:class:`~synctva_ros.config.TritonConfig`): url, protocol (``tritonclient`` gRPC by default, or HTTP), model
name, timeout, retries, retry interval, fallback backend, node padding, verification tolerance.

Failure handling (inference runs on the node's worker thread, never in the executor):

* Each request waits at most ``timeout_s``; a failed one (timeout, connection refused, server error) is
  retried ``retries`` times; then the window is answered by the local **fallback** backend (onnxruntime or
  torch, loaded at start), a warning is logged and counted (:meth:`TritonBackend.counters`), and the fallback
  answers every window for ``retry_interval_s`` before the server is tried again. No window is lost; the worst
  extra wait per window is ``(retries + 1) * timeout_s``.
* Replies are checked before use: the model's metadata (input and output names, datatypes, ranks, feature
  widths) on every (re)connection, and each reply's output shapes ``(B, S, C)`` / ``(B, S, 3)``, dtype FP32 and
  finiteness. A bad reply is refused with :class:`TritonReplyError` (the message names the tensor, what came
  and what was expected); the fallback answers that window (without a fallback the error is raised).
* The first reply after each (re)connection is compared with the fallback on the same window; probabilities
  that differ by more than ``verify_tolerance`` refuse the server (its model is another checkpoint's).

``name`` says which backend answered the calling thread's last window: ``"triton"`` or the fallback's name
(``"onnxruntime"``, ``"torch"``), so ``EmotionState.backend`` tells the truth.

Padding (``pad_nodes``): node axes are padded with masked nodes to the next power of two (at least 4), so
windows of several robots share shapes and Triton's dynamic batcher, which batches equal shapes only, can batch
them; outputs are unchanged within 1e-6 (``test/backends/test_triton_backend.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from synctva_ros.core.batch import Batch
from .base import Backend, BackendUnavailable
from .export import FUSION_OUTPUTS, SUBSETS_INPUT, batch_to_feeds, pad_node_axes
from .triton_repository import ModelSpec

__all__ = ["TritonBackend", "TritonReplyError", "grpc_channel_args", "pad_node_axes", "require_tritonclient"]

log = logging.getLogger(__name__)



class TritonReplyError(RuntimeError):
    """The server's model or reply does not match what this checkpoint's network gives (names, dtypes, shapes,
    non-finite values, or probabilities beyond ``verify_tolerance`` of the fallback's)."""


def require_tritonclient(protocol: str) -> Any:
    """The ``tritonclient.grpc`` or ``tritonclient.http`` module.

    Raises:
        BackendUnavailable: not installed (the message names the package and an alternative).
    """
    try:
        if protocol == "http":
            import tritonclient.http as client  # deferred: optional dependency (backend triton only)
        else:
            import tritonclient.grpc as client  # deferred: optional dependency (backend triton only)
    except ImportError as exc:
        raise BackendUnavailable(f"tritonclient ({protocol}) not installed: pip install 'tritonclient[grpc,http]', "
                                 "or use backend onnxruntime") from exc
    return client


def grpc_channel_args(client_module: Any, retry_interval_s: float) -> list[tuple[str, int]]:
    """gRPC channel options for ``tritonclient.grpc.InferenceServerClient(channel_args=...)``.

    tritonclient's own defaults (unlimited message sizes, its ``KeepAliveOptions``), plus gRPC's reconnect backoff
    (``grpc.initial/min/max_reconnect_backoff_ms``) capped at ``retry_interval_s`` (at least 100 ms). gRPC keeps a
    failed address's backoff in a process-wide subchannel that every channel with the same arguments shares, and
    grows it 1.6x per failed attempt up to 120 s while any channel to the address stays open (another thread's
    client, e.g. a node's start-up probe's): after an outage every request would otherwise fail at once with
    "Connection refused" for up to two minutes after the server is back, against ``retry_interval_s``'s promise
    (gRPC's connection-backoff.md; ``test_a_restarted_server_is_used_again_within_the_retry_interval``).

    Args:
        client_module: ``tritonclient.grpc``.
        retry_interval_s: the ``triton.retry_interval_s`` setting (seconds).

    Returns:
        ``[(option name, int value), ...]``; backoffs in milliseconds. Raises nothing.
    """
    keep = client_module.KeepAliveOptions()
    backoff_ms = max(100, int(round(1000.0 * float(retry_interval_s))))
    return [("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1),
            ("grpc.keepalive_time_ms", keep.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", keep.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", int(keep.keepalive_permit_without_calls)),
            ("grpc.http2.max_pings_without_data", keep.http2_max_pings_without_data),
            ("grpc.initial_reconnect_backoff_ms", backoff_ms), ("grpc.min_reconnect_backoff_ms", backoff_ms),
            ("grpc.max_reconnect_backoff_ms", backoff_ms)]


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class TritonBackend(Backend):
    """The fusion network on a Triton server, with a local fallback (see the module docstring).

    Args:
        settings: the ``triton`` section (:class:`~synctva_ros.config.TritonConfig`); ``timeout_s``, ``retries``,
            ``retry_interval_s``, ``pad_nodes`` and ``verify_tolerance`` are read at every call (run-time
            parameter changes apply).
        spec: the served model's tensors (:func:`~synctva_ros.backends.triton_repository.fusion_model_spec` of the
            loaded model): what the server must accept and return.
        fallback: the local backend (``None``: failures raise instead).

    Shapes:
        ``infer(batch)`` -> logits ``(B, C)``, contributions ``(B, 3)`` (the all-modalities subset,
        :meth:`Backend.infer <synctva_ros.backends.base.Backend.infer>`); ``infer_subsets(batch, keep (S, 3))`` ->
        ``(B, S, C)``, ``(B, S, 3)``; float32.

    Raises:
        BackendUnavailable: tritonclient is not installed.
    """

    tolerance = 1e-4

    def __init__(self, settings: Any, spec: ModelSpec, fallback: Backend | None) -> None:
        self.settings = settings
        self.protocol = str(settings.protocol)
        self.client_module = require_tritonclient(self.protocol)
        self.spec = spec
        #: The batch's inputs the served graph takes (``subsets`` comes from ``keep``).
        self._feed_names = [t.name for t in spec.inputs if t.name != SUBSETS_INPUT]
        self.fallback = fallback
        self.url = str(settings.url)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._verified = False
        self._last = "triton"
        self._counts = {"triton": 0, "fallback": 0, "failures": 0, "bad_replies": 0, "skipped": 0}
        #: Message of the last failure or refused reply ("" = none yet).
        self.last_error = ""

    # ------------------------------------------------------------------ reporting
    @property  # type: ignore[override]
    def name(self) -> str:
        """``"triton"`` or the fallback's name: who answered this thread's last window (before any: the last
        answer in any thread, ``"triton"`` at first)."""
        return getattr(self._local, "answered", None) or self._last

    def counters(self) -> dict[str, int]:
        """Windows answered by ``triton`` and by the ``fallback``; ``failures`` (requests that failed after their
        retries), ``bad_replies`` (refused replies and models), ``skipped`` (windows sent straight to the fallback
        while the server was being left alone)."""
        with self._lock:
            return dict(self._counts)

    def describe(self) -> dict[str, Any]:
        """URL, protocol, model, whether the server is being left alone now, counters and the last error."""
        with self._lock:
            down = max(0.0, self._down_until - time.monotonic())
        return {"url": self.url, "protocol": self.protocol, "model": self.spec.name, "down_for_s": round(down, 3),
                "counters": self.counters(), "last_error": self.last_error}

    # ------------------------------------------------------------------ inference
    def infer_subsets(self, batch: Batch, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logits ``(B, S, C)`` and contributions ``(B, S, 3)`` from the server, else from the fallback.

        Raises:
            TritonReplyError, ConnectionError: only without a fallback.
        """
        keep = np.ascontiguousarray(np.asarray(keep, bool).reshape(-1, 3))
        with self._lock:
            down = time.monotonic() < self._down_until
            if down:
                self._counts["skipped"] += 1
        if down:
            return self._fall_back(batch, keep, None)
        try:
            out = self._remote(batch, keep)
        except TritonReplyError as exc:
            self._failed("bad_replies", exc, refused=True)
            return self._fall_back(batch, keep, exc)
        except Exception as exc:  # noqa: BLE001 - tritonclient/gevent/grpc raise many types: all mean "no answer"
            self._failed("failures", exc, refused=False)
            return self._fall_back(batch, keep, exc)
        with self._lock:
            self._counts["triton"] += 1
            recovered = self._counts["fallback"] and self._last != "triton"
            self._last = "triton"
        if recovered:
            log.info("Triton server %s answers again (%d windows were answered by %s so far)", self.url,
                     self.counters()["fallback"], self._fallback_name())
        self._local.answered = "triton"
        return out

    def _fallback_name(self) -> str:
        return self.fallback.name if self.fallback is not None else "none"

    def _failed(self, kind: str, exc: BaseException, refused: bool) -> None:
        """Count, log (a warning; an error for a refused reply) and leave the server alone a while."""
        interval = float(self.settings.retry_interval_s)
        with self._lock:
            self._counts[kind] += 1
            self._down_until = time.monotonic() + interval
            self._verified = False
            n = self._counts["failures"] + self._counts["bad_replies"]
        self.last_error = f"{type(exc).__name__}: {exc}"
        what = "refused a reply of" if refused else "got no answer from"
        msg = (f"backend triton {what} {self.url} ({self.protocol}, model {self.spec.name}): {self.last_error}; "
               f"{self._fallback_name()} answers for {interval:.1f} s (failure {n})")
        (log.error if refused else log.warning)(msg)

    def _fall_back(self, batch: Batch, keep: np.ndarray, exc: BaseException | None) -> tuple[np.ndarray, np.ndarray]:
        if self.fallback is None:
            if exc is None:
                raise ConnectionError(f"Triton server {self.url} is being left alone after a failure "
                                      f"({self.last_error}) and there is no fallback")
            raise exc
        out = self.fallback.infer_subsets(batch, keep)
        with self._lock:
            self._counts["fallback"] += 1
            self._last = self.fallback.name
        self._local.answered = self.fallback.name
        return out

    # ------------------------------------------------------------------ the server
    def _client(self) -> Any:
        """This thread's client (gRPC channels and HTTP connections are not shared across threads)."""
        made_with = (float(self.settings.timeout_s), float(self.settings.retry_interval_s))
        c = getattr(self._local, "client", None)
        if c is None or getattr(self._local, "made_with", None) != made_with:
            if self.protocol == "http":
                c = self.client_module.InferenceServerClient(self.url, connection_timeout=made_with[0],
                                                             network_timeout=made_with[0])
            else:
                c = self.client_module.InferenceServerClient(
                    self.url, channel_args=grpc_channel_args(self.client_module, made_with[1]))
            self._local.client, self._local.made_with = c, made_with
        return c

    def _call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        """``client.fn(...)`` with the timeout, retried ``retries`` times."""
        timeout = float(self.settings.timeout_s)
        if self.protocol == "grpc":
            kwargs["client_timeout"] = timeout
        last: BaseException | None = None
        for _ in range(int(self.settings.retries) + 1):
            client = self._client()
            try:
                return getattr(client, fn)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - retried, then re-raised
                last = exc
                self._local.client = None  # a fresh connection for the next attempt; this one closed now, not
                try:  # whenever the garbage collector frees it (an open channel keeps gRPC's backoff growing)
                    client.close()
                except Exception:  # noqa: BLE001 - closing a broken connection may fail too
                    pass
        assert last is not None
        raise last

    def _check_metadata(self) -> None:
        """The server's model must have this spec's inputs and outputs (names, datatypes, ranks, fixed widths).

        Raises:
            TritonReplyError: the first difference found, named.
        """
        meta = self._call("get_model_metadata", self.spec.name,
                          **({"as_json": True} if self.protocol == "grpc" else {}))
        where = f"model '{self.spec.name}' on {self.url}"
        for kind, wanted in (("inputs", self.spec.inputs), ("outputs", self.spec.outputs)):
            have = {t["name"]: t for t in meta.get(kind, [])}
            for t in wanted:
                got = have.get(t.name)
                if got is None:
                    raise TritonReplyError(f"{where} has no {kind[:-1]} '{t.name}' (it has {sorted(have)})")
                shape = [int(d) for d in got.get("shape", [])]
                expected = [-1, *t.dims]
                if got.get("datatype") != t.datatype or len(shape) != len(expected) or any(
                        e != -1 and s not in (e, -1) for s, e in zip(shape, expected)):
                    raise TritonReplyError(f"{where}: {kind[:-1]} '{t.name}' is {got.get('datatype')} {shape}, "
                                           f"expected {t.datatype} {expected} (another checkpoint's model?)")

    def _remote(self, batch: Batch, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One verified request for ``batch`` and the subsets ``keep``."""
        if not self._verified:
            self._check_metadata()
        feeds = batch_to_feeds(batch, self._feed_names)
        b = next(iter(feeds.values())).shape[0]
        if self.settings.pad_nodes:
            feeds = pad_node_axes(feeds)
        feeds[SUBSETS_INPUT] = np.ascontiguousarray(np.broadcast_to(keep, (b, *keep.shape)))
        mod = self.client_module
        inputs = []
        for t in self.spec.inputs:
            arr = np.ascontiguousarray(feeds[t.name], dtype=t.numpy_dtype)
            x = mod.InferInput(t.name, list(arr.shape), t.datatype)
            x.set_data_from_numpy(arr)
            inputs.append(x)
        outputs = [mod.InferRequestedOutput(n) for n in FUSION_OUTPUTS]
        reply = self._call("infer", self.spec.name, inputs, outputs=outputs)
        logits, contrib = (self._checked(reply, n, (b, keep.shape[0], w))
                           for n, w in zip(FUSION_OUTPUTS, (self.spec.outputs[0].dims[-1], 3)))
        if not self._verified:
            self._verify(batch, keep, logits)
        return logits, contrib

    def _checked(self, reply: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """Output ``name`` of ``reply`` if it is FP32 of ``shape`` and finite.

        Raises:
            TritonReplyError: missing, another dtype or shape, or non-finite values.
        """
        arr = reply.as_numpy(name)
        where = f"reply of model '{self.spec.name}' on {self.url}"
        if arr is None:
            raise TritonReplyError(f"{where} has no output '{name}'")
        if arr.dtype != np.float32 or tuple(arr.shape) != tuple(shape):
            raise TritonReplyError(f"{where}: output '{name}' is {arr.dtype} {tuple(arr.shape)}, expected float32 "
                                   f"{tuple(shape)} (B, S, {shape[-1]})")
        if not np.all(np.isfinite(arr)):
            raise TritonReplyError(f"{where}: output '{name}' has non-finite values")
        return arr

    def _verify(self, batch: Batch, keep: np.ndarray, logits: np.ndarray) -> None:
        """The first reply after a (re)connection against the fallback on the same window.

        Raises:
            TritonReplyError: probabilities differ by more than ``verify_tolerance``.
        """
        tol = float(self.settings.verify_tolerance)
        if tol > 0 and self.fallback is not None:
            ref, _ = self.fallback.infer_subsets(batch, keep)
            diff = float(np.max(np.abs(_softmax(np.asarray(ref, np.float64)) - _softmax(logits.astype(np.float64)))))
            if not diff <= tol:
                raise TritonReplyError(f"model '{self.spec.name}' on {self.url} answers this window with probabilities "
                                       f"{diff:.3g} away from the local {self.fallback.name} (> verify_tolerance "
                                       f"{tol:g}): the server serves another checkpoint; write its repository from "
                                       "this checkpoint (synctva serve --checkpoint ...)")
            log.info("Triton server %s verified: model %s within %.2g of %s", self.url, self.spec.name, diff,
                     self.fallback.name)
        self._verified = True
