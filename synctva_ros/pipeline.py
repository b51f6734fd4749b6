"""From an utterance window to an :class:`~synctva_ros.emotion.EmotionResult` (no ROS).

The pipeline is what both the node and ``synctva evaluate`` call, so online and
offline predictions for the same window are the same by construction:

    window --(extractors: text / audio / visual)--> UtteranceFeatures
           --(collate, dialogue context)--> Batch
           --(backend: Sync-TVA fusion)--> logits, contributions
           --(product of experts with the face evidence, affect table)--> EmotionResult

A branch is *active* when the checkpoint trained it and its extractor can run here;
inactive branches are treated as absent and reported so (never run on weights it
was not trained with: a random branch would only add noise).

Streaming (``features.streaming``, default on): the pipeline owns a
:class:`~synctva_ros.streaming.StreamingFeatureCache` (:attr:`EmotionPipeline.streaming`) for the active
audio and visual branches. Attach it to the windower (``UtteranceWindower(sink=pipeline.streaming)``) and
the kept audio and frames are processed while the utterance goes on; :meth:`EmotionPipeline.extract` then
takes audio and visual features from it (equal to the batch extractors' for audio, see the cache's docstring
for frames) and runs the batch extractors for what it does not cover (without a sink, for everything). The
text stage runs at the final transcript, used at close when its inputs are unchanged (``streaming_text``), with the
checkpoint's fine-tuned text layers as its last step (``split_text_top``,
:mod:`~synctva_ros.backends.text_top_serving`).

Dialogue context: the pipeline keeps the windows it predicted, per session (``dialogue_id``), in a
:class:`~synctva_ros.features.dialogue.DialogueContext` (:attr:`EmotionPipeline.dialogue`): their
transcripts and speaker tags (the ROS4HRI person, else the voice: one history per dialogue, each turn tagged,
:mod:`synctva_ros.features.dialogue`) feed the text encoder's context (``features.text_context_turns``) and their
sentence embeddings the model's pooled context (the checkpoint's ``context_turns``). Only
:meth:`EmotionPipeline.predict` adds a window, after predicting it, so the context follows the order
in which windows are predicted; it is forgotten (:meth:`EmotionPipeline.reset_dialogue`) when a window
of a new windower session arrives (``UtteranceWindow.session``: sensor time jumped). The node and
``synctva evaluate`` predict their windows through the same calls, so they reset at the same window.

Facial-expression expert (``features.face_expert``, default on; its weights from ``make setup``): the window's
frames thinned to ``features.face_fps`` give the evidence of the speaker's face
(:mod:`synctva_ros.features.faces.evidence`; with streaming, computed as the frames arrive), fused with the
Sync-TVA network's softmax as a product of calibrated experts (:mod:`synctva_ros.model.window_fusion`; the
checkpoint's ``expert_fusion`` block or the defaults of :mod:`synctva_ros.checkpoint.fusion`). Not installed:
logged once, the visual evidence is absent (never random weights). A window without a face is fused without
it: the result is then the network's own posterior.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synctva_ros.backends import create_backend
from synctva_ros.backends.text_encoder import serve_text_encoder
from synctva_ros.backends.text_top_serving import apply_text_top, serve_text_top, split_text_top
from synctva_ros.backends.visual_encoder import serve_visual_encoder
from synctva_ros.checkpoint import CheckpointError, load_checkpoint, read_manifest, restore_text_top
from synctva_ros.checkpoint.fusion import fusion_for_manifest
from synctva_ros.config import SyncTVAConfig, resolve_path
from synctva_ros.core.batch import Batch, ModalityFeatures, UtteranceFeatures, collate
from synctva_ros.core.modalities import MODALITIES
from synctva_ros.core.window import UtteranceWindow
from synctva_ros.emotion import EmotionResult
from synctva_ros.features.base import FeatureExtractor
from synctva_ros.features.dialogue import DialogueContext
from synctva_ros.features.faces.evidence import FaceEvidence, build_face_evidence
from synctva_ros.features.registry import build_extractors
from synctva_ros.model.affect import expected_affect
from synctva_ros.model.experts import ExpertFusion, log_softmax
from synctva_ros.model.window_fusion import WindowFusion, fuse_window, network_subsets
from synctva_ros.streaming import StreamingFeatureCache
from synctva_ros.streaming.text_prefetch import TextPrefetch, text_job

__all__ = ["EmotionPipeline"]


log = logging.getLogger(__name__)


class EmotionPipeline:
    """Feature extraction + Sync-TVA inference for single utterance windows.

    Args:
        cfg: the full configuration; ``cfg.runtime.checkpoint`` names the checkpoint
            directory and ``cfg.runtime.backend`` the inference backend.
        checkpoint: overrides ``cfg.runtime.checkpoint``.

    Raises:
        FileNotFoundError: the checkpoint directory does not exist.
        synctva_ros.checkpoint.CheckpointError: corrupt checkpoint, files that differ from their
            integrity record, its extractors differ from the configured ones (the message names the
            modality and keys), or the probe inference at construction (:meth:`probe`) gives
            non-finite outputs or classes without a valence/arousal entry.
        RuntimeError: the backend cannot start (the message says which to use instead).
    """

    def __init__(self, cfg: SyncTVAConfig, checkpoint: str | Path | None = None) -> None:
        self.cfg = cfg
        if cfg.runtime.threads > 0:
            torch.set_num_threads(cfg.runtime.threads)
        ckpt_dir = resolve_path(checkpoint or cfg.runtime.checkpoint)
        manifest = read_manifest(ckpt_dir)
        trained = {m: bool(manifest.get("active", {}).get(m, False)) for m in MODALITIES}
        # Build only the extractors of branches the checkpoint trained.
        # ... on runtime.device, as the backend (issue 10): the encoders are the costly stages
        extractors = build_extractors(cfg.features, modalities=[m for m in MODALITIES if trained[m]],
                                      device=cfg.runtime.device)
        self.extractors: dict[str, FeatureExtractor] = {m: e for m, e in extractors.items() if e is not None}
        for m in MODALITIES:
            if trained[m] and m not in self.extractors:
                log.warning("checkpoint trained the %s branch but its extractor is unavailable here: "
                            "%s branch off", m, m)
        expected = {m: (self.extractors[m].identity() if m in self.extractors else None) for m in MODALITIES
                    if trained[m]}
        self.model, self.manifest = load_checkpoint(ckpt_dir, expected_extractors=expected)
        if getattr(self.model, "text_top_layers", 0) and "text" in self.extractors:
            # fine-tuned top layers = base encoder + the checkpoint's deltas
            restore_text_top(self.model, self.manifest, self.extractors["text"])
        self.model.eval()
        self.active = {m: trained[m] and m in self.extractors for m in MODALITIES}
        #: The fine-tuned text layers when they run in the text stage (``features.split_text_top``), else ``None``.
        self.text_top = split_text_top(self.model) if cfg.features.split_text_top and self.active["text"] else None
        self.class_names: list[str] = list(self.manifest["class_names"])
        self.dims: dict[str, int] = dict(self.manifest["dims"])
        self.context_turns = int(self.manifest["architecture"].get("context_turns", 0))
        self.name: str = str(self.manifest.get("name", ckpt_dir.name))
        self.backend = create_backend(cfg.runtime, self.model, self.manifest, triton=cfg.triton)
        #: What runs the text extractor's encoder: ``torch``, ``torch-cudagraph``, ``onnxruntime``, ``onnxruntime-int8``
        #: ("" without text);
        #: the visual extractor's ResNet trunk: ``torch``, ``onnxruntime`` ("" without one).
        self.text_runtime, self.visual_runtime = "", ""
        self.serve_encoders(cfg.runtime)
        #: The product of experts (checkpoint block or defaults) and whether the block was the manifest's.
        self.fusion, self.fusion_block, self.fusion_from_manifest = self._fusion()
        #: The facial-expression stage (``None``: off, weights missing, or classes it cannot map onto).
        self.faces = build_face_evidence(
            cfg.features.face_expert, cfg.features.face_fps, cfg.features.face_policy,
            detect_every=cfg.features.face_detect_every, min_face_frac=cfg.features.face_min_size,
            runtime=cfg.features.face_runtime) if self.fusion is not None else None
        if self.fusion is None:
            self.fusion = ExpertFusion(prior=np.ones(len(self.class_names)))
        #: Streaming feature cache of the active audio/visual branches and the face stage (``None`` when off
        #: or none of them).
        self.streaming = None
        streamed = {m: self.extractors[m] for m in ("audio", "visual") if self.active[m]}
        if cfg.features.streaming and (streamed or self.faces is not None):
            self.streaming = StreamingFeatureCache(streamed, buffer_s=cfg.windowing.buffer_s,
                                                   block_s=cfg.features.streaming_block_s,
                                                   oversample=cfg.features.streaming_oversample,
                                                   audio_mode=cfg.features.streaming_audio,
                                                   drain_timeout_s=cfg.features.streaming_wait_s, faces=self.faces)
        text_k = int(getattr(self.extractors.get("text"), "context_turns", 0) or 0)
        #: Previous windows per session: text turns for the encoder, sentence embeddings for the fusion.
        self.dialogue = DialogueContext(max(self.context_turns, text_k, 1))
        if self.streaming is not None and cfg.features.streaming_text and "text" in self.extractors:
            self.streaming.text = TextPrefetch(self._text_job, self.streaming.stats)  # at the final transcript
        self._session: int | None = None  # windower session of the last predicted window
        self.probe()

    def probe(self) -> None:
        """One inference on fixed synthetic features, run at construction: fail now, not on every window.

        Every trained branch gets 4 nodes of a fixed pseudo-random input (seed 0, standard normal,
        times evenly spread over [0, 1]) and the full post-processing runs (softmax, affect table). The
        dialogue context is neither read nor changed (a session id no window can have).

        Raises:
            CheckpointError: logits, probabilities or contributions that are not finite (e.g. NaN or
                overflowing weights), or a class name without a valence/arousal entry.
        """
        rng = np.random.default_rng(0)
        feats = UtteranceFeatures(dialogue_id="\x00probe")
        for m in MODALITIES:
            if self.active[m]:
                setattr(feats, m, ModalityFeatures(rng.standard_normal((4, self.dims[m])).astype(np.float32),
                                                   np.linspace(0.0, 1.0, 4, dtype=np.float32)))
        try:
            if self.text_top_runner is not None and feats.text is not None:  # the layers split off are probed too
                feats.text = apply_text_top(feats.text, self.text_top_runner)
            logits, contrib = self._infer(feats)  # no turns for the probe session: an empty context
            if not (np.all(np.isfinite(logits)) and np.all(np.isfinite(contrib))):
                raise ValueError(f"non-finite outputs: logits {logits.tolist()}, contributions {contrib.tolist()}")
            expected_affect(np.exp(log_softmax(logits)), self.class_names)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint {self.name}: the probe inference at start-up failed on "
                                  f"{self.backend_name}, every window would fail or be wrong: {exc}") from exc

    def _fusion(self) -> tuple[ExpertFusion | None, dict[str, Any], bool]:
        """The checkpoint's fusion (``expert_fusion`` block or the defaults); ``(None, {}, False)`` when the
        face evidence cannot be mapped onto its classes (logged; the visual expert is then off)."""
        try:
            return fusion_for_manifest(self.manifest)
        except CheckpointError as exc:
            log.warning("face expert off for checkpoint %s: %s", self.name, exc)
            return None, {}, False

    def serve_text(self, runtime: Any) -> str:
        """Serve the active text extractor's encoder on ``runtime``'s backend
        (:func:`~synctva_ros.backends.text_encoder.serve_text_encoder`: onnxruntime, else torch; never raises for a
        backend that cannot serve it); sets and returns :attr:`text_runtime` (``""`` without a text branch).

        Args:
            runtime: :class:`~synctva_ros.config.RuntimeConfig` (backend, device, threads, quantize, cache_dir).
        """
        self.text_runtime = serve_text_encoder(self.extractors.get("text") if self.active["text"] else None, runtime)
        #: What runs the fine-tuned text layers in the text stage (:attr:`text_top`; ``None`` without them).
        self.text_top_runner = serve_text_top(self.text_top, runtime)
        return self.text_runtime

    def serve_encoders(self, runtime: Any) -> dict[str, str]:
        """Serve the active text extractor's encoder (:meth:`serve_text`) and visual extractor's ResNet trunk
        (:func:`~synctva_ros.backends.visual_encoder.serve_visual_encoder`) on ``runtime``'s backend; sets
        :attr:`text_runtime` and :attr:`visual_runtime`. Never raises for a backend that cannot serve them.

        Returns:
            ``{"text": text_runtime, "visual": visual_runtime}``.
        """
        self.visual_runtime = serve_visual_encoder(self.extractors.get("visual") if self.active["visual"] else None,
                                                   runtime)
        return {"text": self.serve_text(runtime), "visual": self.visual_runtime}

    @property
    def backend_name(self) -> str:
        """Name of the backend serving now (a TensorRT backend reports onnxruntime until its engine is ready; a
        Triton backend names who answered this thread's last window: ``triton`` or its local fallback)."""
        return self.backend.name

    @classmethod
    def from_config(cls, cfg: SyncTVAConfig) -> "EmotionPipeline":
        """Build from ``cfg.runtime.checkpoint`` (see the class docstring for errors)."""
        return cls(cfg)

    # ------------------------------------------------------------------ steps
    def extract(self, window: UtteranceWindow) -> tuple[UtteranceFeatures, dict[str, float]]:
        """Run each active extractor on ``window``.

        Audio and visual features come from :attr:`streaming` when it is on (it runs the
        batch extractor itself for what it has not cached); ``feats.meta["streaming"]`` then
        says per modality where they came from.

        Returns:
            (features, stage_s): absent or inactive modalities are ``None``;
            stage_s maps modality to seconds spent.
        """
        feats = UtteranceFeatures(dialogue_id=window.dialogue_id)
        stage_s: dict[str, float] = {}
        for m, ext in self.extractors.items():
            if not self.active[m]:
                continue
            t0 = time.perf_counter()
            try:
                if m == "text":  # prefetched at the final transcript when the inputs are still the same
                    key, job = self._text_job(window)
                    pre = getattr(self.streaming, "text", None) if window.transcript else None  # VAD: no text
                    wait_s = self.cfg.features.streaming_wait_s
                    out, feats.sentence = (pre.take(key, wait_s) if pre is not None else None) or job()
                elif self.streaming is not None:
                    streamed = self.streaming.features_for(window, (m,))
                    out = getattr(streamed, m)
                    feats.meta.setdefault("streaming", {}).update(streamed.meta["streaming"])
                else:
                    out = ext(window)
            except (ValueError, RuntimeError) as exc:  # bad content: modality treated as absent
                log.warning("%s features failed for window %.3f-%.3f s: %s", m, window.start, window.end, exc)
                out = None
            stage_s[m] = time.perf_counter() - t0
            setattr(feats, m, out)
        return feats, stage_s

    def _text_job(self, window: UtteranceWindow) -> tuple[Any, Any]:
        """Key and job of ``window``'s text stage with its session's context as of now (:func:`text_job`; the
        sentence embedding only feeds the pooled context: without one the encoder runs once)."""
        runner = self.text_top_runner
        return text_job(self.extractors["text"], window, self.dialogue.turns(window.dialogue_id),
                        self.context_turns > 0, None if runner is None else lambda t: apply_text_top(t, runner))

    def predict_features(self, feats: UtteranceFeatures) -> tuple[np.ndarray, np.ndarray]:
        """Fusion on extracted features, with the session's previous sentence embeddings as pooled context.

        Returns:
            probabilities ``(C,)`` and contributions ``(3,)`` (text, audio, visual), float64.
        """
        logits, contrib = self._infer(feats)
        return np.exp(log_softmax(logits)), contrib

    def _infer(self, feats: UtteranceFeatures) -> tuple[np.ndarray, np.ndarray]:
        """The backend's logits ``(C,)`` and contributions ``(3,)`` (float64) for one window's features.

        The pooled context is the last ``context_turns`` sentence embeddings of ``feats.dialogue_id``
        in :attr:`dialogue` (read only).
        """
        logits, contrib = self.backend.infer(self._collate(feats))
        return np.asarray(logits, dtype=np.float64)[0], np.asarray(contrib, dtype=np.float64)[0]

    def _collate(self, feats: UtteranceFeatures) -> Batch:
        """The one-row batch of ``feats`` with its session's pooled context (read only, see :meth:`_infer`)."""
        contexts = None
        if self.context_turns > 0:
            turns = self.dialogue.turns(feats.dialogue_id)
            contexts = [[t.sentence for t in turns if t.sentence is not None][-self.context_turns:]]
        return collate([feats], self.dims, contexts=contexts, context_turns=self.context_turns)

    def face_evidence(self, window: UtteranceWindow) -> FaceEvidence | None:
        """The window's face evidence (streamed observations when the cache runs), None when the stage is off.
        Raises nothing for bad frames (logged and counted)."""
        if self.faces is None:
            return None
        try:
            if self.streaming is not None and self.streaming.face is not None:
                return self.streaming.face_evidence_for(window)
            return self.faces(window)
        except Exception as exc:  # e.g. an OpenCV error on odd frames: the window goes on without the face
            log.warning("face evidence failed for window %.3f-%.3f s: %s", window.start, window.end, exc)
            return None

    def fuse(self, feats: UtteranceFeatures, evidence: FaceEvidence | None) -> WindowFusion:
        """The network on the window's features (all present modalities, then each of text and audio alone when
        more than one is present) fused with the face evidence (:func:`~synctva_ros.model.window_fusion.fuse_window`).

        The subsets go to the backend as one call (``Backend.infer_subsets``: one pass with the text layers
        computed once on torch and onnxruntime), equal to one :meth:`_infer` per subset within the backend's
        tolerance (``test/test_pipeline_subsets.py``)."""
        keep, alone = self.subsets(feats)
        if len(keep) == 1:
            logits, contrib = self._infer(feats)
            return fuse_window(self.fusion, logits, contrib, {m: logits for m in alone},
                               None if evidence is None else evidence.probs)
        logits, contrib = self.backend.infer_subsets(self._collate(feats), keep)
        logits, contrib = np.asarray(logits, np.float64)[0], np.asarray(contrib, np.float64)[0]
        single = {m: logits[1 + i] for i, m in enumerate(alone)}
        return fuse_window(self.fusion, logits[0], contrib[0], single, None if evidence is None else evidence.probs)

    #: ``subsets(feats) -> (keep (S, 3) bool, alone)``: what :meth:`fuse` asks the network for
    #: (:func:`~synctva_ros.model.window_fusion.network_subsets`).
    subsets = staticmethod(network_subsets)

    def predict(self, window: UtteranceWindow) -> EmotionResult:
        """Recognise the emotion of one window, then add it to its session's dialogue context.

        A window of another windower session than the previous one (``window.session``: the
        windower saw sensor time jump, a new conversation) first resets the dialogue context, so
        the node and ``synctva evaluate`` reset at the same window whatever queues lie between.

        Raises nothing for bad window content: a modality that cannot be
        processed is logged and treated as absent.
        """
        session = getattr(window, "session", 0)
        if self._session is not None and session != self._session:
            self.reset_dialogue()
        self._session = session
        feats, stage_s = self.extract(window)
        t0 = time.perf_counter()
        evidence = self.face_evidence(window)
        stage_s["face"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fused = self.fuse(feats, evidence)
        stage_s["fusion"] = time.perf_counter() - t0
        self.dialogue.add_window(window, feats.sentence)
        probs, contrib = fused.probabilities, fused.contributions
        idx = int(np.argmax(probs))
        valence, arousal = expected_affect(probs, self.class_names)
        used = {m: getattr(feats, m) is not None for m in MODALITIES}
        used["visual"] = used["visual"] or fused.visual_used
        return EmotionResult(
            start=window.start, end=window.end,
            class_names=list(self.class_names), probabilities=[float(p) for p in probs],
            label=self.class_names[idx], index=idx, confidence=float(probs[idx]),
            valence=float(valence), arousal=float(arousal),
            contributions={m: float(c) for m, c in zip(MODALITIES, contrib)},
            present=window.present, active=used,
            transcript=window.transcript or "", model=self.name, backend=self.backend_name,
            stage_s=stage_s, utterance_id=window.utterance_id,
            modality_probabilities={m: [float(p) for p in v] for m, v in fused.modality_probabilities.items()},
            faces_seen=0 if evidence is None else evidence.faces_seen,
            face_track_id=-1 if evidence is None else evidence.face_track_id,
            expert_inputs={k: [float(x) for x in v] for k, v in fused.inputs.items()},
        )

    def reset_dialogue(self) -> None:
        """Forget dialogue context (e.g. when time goes backwards)."""
        self.dialogue.reset()

    def close(self) -> None:
        """Stop the streaming cache's thread and live openSMILE runs, if any (the pipeline still works after)."""
        if self.streaming is not None:
            self.streaming.close()

    def describe(self) -> dict[str, Any]:
        """Name, backend (and its ``quantize``: ``int8`` or ``none``), what runs the text and visual encoders, classes,
        active branches and streaming counters (for logs and diagnostics)."""
        out = {"model": self.name, "backend": self.backend_name,
               "quantize": str(getattr(self.backend, "quantize", "none")), "text_encoder": self.text_runtime,
               "text_top": getattr(self.text_top_runner, "name", ""),
               "visual_encoder": self.visual_runtime, "classes": self.class_names,
               "active": dict(self.active), "face_expert": self.faces is not None,
               "expert_fusion": dict(self.fusion_block, source="manifest" if self.fusion_from_manifest else "default")}
        if self.streaming is not None:
            out["streaming"] = self.streaming.describe()
        return out
