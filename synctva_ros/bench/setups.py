"""The benchmark's configurations and the checkpoints they run.

``demo``: the demo profile (or the one given) with the shipped ``models/meld_minilm`` when it
exists, else a development checkpoint trained for a few seconds on random features (labelled
``checkpoint: dev``). ``quality``: the quality profile (all-mpnet-base-v2 with its **real** weights, four turns of
dialogue context, openSMILE eGeMAPSv02) with its checkpoint ``models/meld_mpnet`` when it exists, else a network
head trained for a few seconds on random features over those real extractors, the whole encoder in the extractor
(``checkpoint: untrained head``, ``random_weights`` true: latency only, its predictions mean nothing).
``paper_random``: a RoBERTa-base-sized encoder from ``RobertaConfig()`` defaults and a ResNet-50, **random weights:
latency only**; fusion at the paper profile's width.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from synctva_ros.bench.inputs import SENTENCES
from synctva_ros.backends.engine_cache import cache_key
from synctva_ros.checkpoint import MANIFEST_FILE, save_checkpoint
from synctva_ros.config import SyncTVAConfig, load_config, resolve_path
from synctva_ros.core.batch import ModalityFeatures, UtteranceFeatures, collate
from synctva_ros.core.modalities import MODALITIES
from synctva_ros.features.registry import build_extractors
from synctva_ros.features.torchvision_compat import ensure_torchvision
from synctva_ros.model.synctva import SyncTVA

__all__ = ["PAPER_RANDOM_KEYS", "BenchSetup", "dev_checkpoint", "random_roberta", "paper_random_assets",
           "bench_setups"]

log = logging.getLogger(__name__)


@dataclass
class BenchSetup:
    """One benchmarked configuration.

    Attributes:
        name: row label in ``bench.json`` (``config``).
        cfg: the configuration the pipeline is built from (``runtime.checkpoint`` set).
        checkpoint: ``"<shipped|given|dev|random>: <directory>"``.
        random_weights: the checkpoint (or an encoder) is not trained: latency only.
        repeats: timed windows per backend and mode.
    """

    name: str
    cfg: SyncTVAConfig
    checkpoint: str
    random_weights: bool
    repeats: int


def dev_checkpoint(directory: Path, cfg: SyncTVAConfig, extractors: dict[str, Any], steps: int = 30) -> Path:
    """A checkpoint trained for a few seconds on random features (development stand-in, not a model).

    Adam (lr 1e-3, seed 0) for ``steps`` batches of 8 utterances with 1-11 random feature nodes per
    modality and random labels; saved with :func:`~synctva_ros.checkpoint.save_checkpoint`.

    Args:
        directory: checkpoint directory to write.
        cfg: configuration (its ``model`` section sets the architecture).
        extractors: extractor per modality (``None`` = inactive branch); their ``dim`` set the
            input widths and their ``identity()`` goes into the manifest.
        steps: optimizer steps.

    Returns:
        ``directory``.
    """
    dims = {m: (extractors[m].dim if extractors.get(m) is not None else 8) for m in MODALITIES}
    active = {m: extractors.get(m) is not None for m in dims}
    torch.manual_seed(0)
    model = SyncTVA(cfg.model, dims, active)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    c = len(cfg.model.class_names)
    model.train()
    for _ in range(steps):
        items = []
        for _b in range(8):
            u = UtteranceFeatures(label=int(rng.integers(c)))
            for m in dims:
                n = int(rng.integers(1, 12))
                setattr(u, m, ModalityFeatures(rng.standard_normal((n, dims[m])).astype(np.float32),
                                               np.sort(rng.random(n)).astype(np.float32)))
            items.append(u)
        batch = collate(items, dims, context_turns=cfg.model.context_turns)
        logits, _ = model.forward_batch(batch)
        loss = torch.nn.functional.cross_entropy(logits, batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    ids = {m: (e.identity() if e is not None else None) for m, e in extractors.items()}
    save_checkpoint(directory, model, {"name": directory.name, "extractors": ids,
                                       "training": {"data": "random features (bench development stand-in)"}})
    return directory


def random_roberta(directory: Path, bpe_vocab: int = 600, **config: Any) -> Path:
    """A RoBERTa with random weights (seed 0) and an offline byte-level BPE tokenizer trained on the bench sentences,
    written to ``directory`` for ``AutoModel.from_pretrained`` (latency measurements and tests, never recognition).

    Args:
        directory: created.
        bpe_vocab: the tokenizer's vocabulary size (word pieces).
        **config: ``transformers.RobertaConfig`` fields (none: RoBERTa-base's defaults, 12 layers x 768).

    Returns:
        ``directory``.
    """
    # deferred: transformers takes seconds to import and is needed only to make this asset once
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    corpus = list(SENTENCES) * 20 + ["the a and you me what why how this that is was were will be"] * 20
    bpe.train_from_iterator(corpus, vocab_size=bpe_vocab, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(directory))
    vocab = json.loads((directory / "vocab.json").read_text())
    merges = [tuple(line.split()) for line in (directory / "merges.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    RobertaTokenizerFast(vocab=vocab, merges=merges).save_pretrained(str(directory))
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(**config)).eval().save_pretrained(str(directory))
    return directory


def paper_random_assets(work: Path) -> tuple[Path, Path]:
    """A random RoBERTa-base (``RobertaConfig()`` defaults) with an offline BPE tokenizer, and a random ResNet-50.

    Made once under ``work`` (seed 0) and reused.

    Returns:
        ``(text encoder directory, ResNet-50 state dict file)``.
    """
    ensure_torchvision()
    text_dir = work / "roberta_base_random"
    vis = work / "resnet50_random.pt"
    if not (text_dir / "model.safetensors").is_file():
        random_roberta(text_dir)
    if not vis.is_file():
        # deferred: torchvision must be imported after ensure_torchvision() (CPU torch wheels)
        import torchvision

        torch.manual_seed(0)
        torch.save(torchvision.models.resnet50(weights=None).state_dict(), vis)
    return text_dir, vis


def _trained_checkpoint(cfg: SyncTVAConfig) -> Path:
    """``cfg.runtime.checkpoint`` resolved, when it holds a manifest. Raises FileNotFoundError otherwise."""
    ckpt = resolve_path(cfg.runtime.checkpoint)
    if not (ckpt / MANIFEST_FILE).is_file():
        raise FileNotFoundError(f"{ckpt} has no manifest.json yet")
    return ckpt


def _demo_setup(profile: str, overrides: Sequence[str], checkpoint: Path | None, work: Path,
                repeats: int) -> BenchSetup:
    cfg = load_config(profile, list(overrides))
    ckpt: Any = checkpoint
    label = "given"
    if ckpt is None:
        try:
            ckpt, label = _trained_checkpoint(cfg), "shipped"
        except FileNotFoundError as exc:
            log.warning("demo checkpoint not usable (%s): using a development checkpoint trained on random "
                        "features (latency only)", exc)
            ckpt = work / f"dev_{Path(str(cfg.runtime.profile)).stem}_checkpoint"
            if not (ckpt / MANIFEST_FILE).is_file():
                dev_checkpoint(ckpt, cfg, build_extractors(cfg.features))
            label = "dev"
    cfg.runtime.checkpoint = str(ckpt)
    return BenchSetup(f"{cfg.runtime.profile}", cfg, f"{label}: {ckpt}", label == "dev", repeats)


def _quality_setup(work: Path, repeats: int, overrides: Sequence[str]) -> BenchSetup:
    """The quality profile; without its trained checkpoint, an untrained head over its real extractors (the
    development checkpoint's folder is named after the extractors' identities, so other weights get another)."""
    cfg = load_config("quality", list(overrides))
    try:
        ckpt = _trained_checkpoint(cfg)
    except FileNotFoundError:
        pass
    else:
        cfg.runtime.checkpoint = str(ckpt)
        return BenchSetup("quality", cfg, f"shipped: {ckpt}", False, repeats)
    log.warning("quality checkpoint %s not trained yet: benchmarking its real extractors with an untrained head "
                "(latency only)", cfg.runtime.checkpoint)
    # The fine-tuned layers above features.text_layer come only with the checkpoint: without it the extractor runs
    # the whole encoder, so that the text stage costs what it costs with the checkpoint.
    cfg.features.text_layer = -1
    extractors = build_extractors(cfg.features, modalities=("text", "audio"))
    key = cache_key({m: (e.identity() if e is not None else None) for m, e in extractors.items()})[:12]
    ckpt = work / f"dev_quality_{key}"
    if not (ckpt / MANIFEST_FILE).is_file():
        dev_checkpoint(ckpt, cfg, extractors)
    cfg.runtime.checkpoint = str(ckpt)
    return BenchSetup("quality", cfg, f"untrained head (real {cfg.features.text_encoder} and openSMILE "
                      f"{cfg.features.audio_feature_set}; latency only): {ckpt}", True, repeats)


#: The overrides ``paper_random`` takes (the others belong to the demo and quality profiles): where its encoders run,
#: the Haar-cascade face crop, which OpenCV 5 no longer has (``features.face_crop=false`` on such a machine), and
#: whether the text stage runs at the final transcript (``features.streaming_text``).
PAPER_RANDOM_KEYS = ("runtime.device", "features.face_crop", "features.streaming_text")


def _paper_random_setup(work: Path, repeats: int, overrides: Sequence[str] = ()) -> BenchSetup:
    text_dir, vis = paper_random_assets(work)
    own = [o for o in overrides if o.split("=", 1)[0].strip() in PAPER_RANDOM_KEYS]
    cfg = load_config("paper", [f"features.text_encoder={text_dir}", f"features.visual_weights={vis}",
                                "runtime.backend=torch", "runtime.device=cpu", "runtime.precision=fp32", *own])
    extractors = build_extractors(cfg.features)
    # named after the extractors' identities: another face_crop (or asset) gets its own checkpoint
    key = cache_key({m: (e.identity() if e is not None else None) for m, e in extractors.items()})[:12]
    ckpt = work / f"paper_random_checkpoint_{key}"
    if not (ckpt / MANIFEST_FILE).is_file():
        dev_checkpoint(ckpt, cfg, extractors, steps=1)
    cfg.runtime.checkpoint = str(ckpt)
    return BenchSetup("paper_random (RoBERTa-base + ResNet-50, random weights: latency only)", cfg,
                      f"random: {ckpt}", True, max(2, repeats // 5))


def bench_setups(configs: Sequence[str], work: Path, repeats: int, profile: str = "demo",
                 overrides: Sequence[str] = (), checkpoint: Path | None = None) -> list[BenchSetup]:
    """The configurations named in ``configs`` (``demo``, ``quality``, ``paper_random``; others are ignored), in that
    order. ``quality`` is left out, with a logged warning, when its encoder's weights are not installed.

    Args:
        configs: configuration names (surrounding blanks and empty names are ignored).
        work: folder for the development checkpoints and random assets (reused between runs).
        repeats: timed windows per backend and mode (``paper_random`` uses ``max(2, repeats // 5)``).
        profile: profile of the ``demo`` configuration (name in ``config/profiles`` or a YAML path).
        overrides: ``section.key=value`` overrides of the ``demo`` and ``quality`` configurations; of these
            ``paper_random`` takes those in :data:`PAPER_RANDOM_KEYS` (``runtime.device``: where its encoders and
            network run, ``cpu`` by default).
        checkpoint: checkpoint of the ``demo`` configuration (default: the profile's when it has a
            manifest, else a development checkpoint under ``work``).

    Returns:
        One :class:`BenchSetup` per known name.

    Raises:
        synctva_ros.config.ConfigError: a bad override.
    """
    wanted = [c.strip() for c in configs if c.strip()]
    out = []
    if "demo" in wanted:
        out.append(_demo_setup(profile, overrides, checkpoint, work, repeats))
    if "quality" in wanted:
        try:
            out.append(_quality_setup(work, repeats, overrides))
        except (FileNotFoundError, OSError, ModuleNotFoundError) as exc:
            log.warning("bench configuration quality skipped: %s", exc)
    if "paper_random" in wanted:
        out.append(_paper_random_setup(work, repeats, overrides))
    return out
