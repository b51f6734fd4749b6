"""Experiment harness (not part of the library): fine-tune a sentence encoder end to end on MELD with the
previous K turns of the dialogue in its input ("Speaker: text" turns as the first segment, the current
utterance as the second; mean-pooled over the current utterance's tokens; linear head).

Selection is honest: 10 % of the TRAINING dialogues (seeded) are the validation split; MELD dev is only
reported. It exists to measure recipes quickly before they go into ``synctva train`` (which now has the same
split, context in the encoder input and top-k fine-tuning); the figures it produced are in docs/results.md.

    .venv/bin/python scripts/experiments/finetune_context.py --encoder <dir> --context 4 --epochs 3 \
        --lr 5e-5 --out out/exp/minilm_c4

Needs ../shared/data/meld/{train,dev}_sent_emo.csv. Writes OUT.json (per-epoch validation and dev metrics)
and the best epoch's logits (OUT.val_logits.npy, OUT.dev_logits.npy).
"""

import argparse, csv, json, math, random, time
from pathlib import Path
import numpy as np, torch
from synctva_ros.features.torchvision_compat import ensure_torchvision
ensure_torchvision()
from transformers import AutoModel, AutoTokenizer
from sklearn.metrics import f1_score, accuracy_score

ap = argparse.ArgumentParser()
ap.add_argument("--encoder", required=True); ap.add_argument("--context", type=int, default=4)
ap.add_argument("--top", type=int, default=0, help="train only the top K layers (0 = all)")
ap.add_argument("--epochs", type=int, default=3); ap.add_argument("--lr", type=float, default=3e-5)
ap.add_argument("--bs", type=int, default=16); ap.add_argument("--max_len", type=int, default=128)
ap.add_argument("--seed", type=int, default=0); ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--limit", type=int, default=0); ap.add_argument("--out", required=True)
a = ap.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(a.seed); random.seed(a.seed); np.random.seed(a.seed)
CLASSES = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
def read(p):
    d = {}
    with open(p, encoding="utf-8-sig") as fh:
        for r in csv.DictReader(fh):
            text = r["Utterance"].replace("\x92", "'")
            label = CLASSES.index(r["Emotion"].strip().lower())
            d.setdefault(int(r["Dialogue_ID"]), []).append((int(r["Utterance_ID"]), r["Speaker"], text, label))
    return {k: sorted(v) for k, v in d.items()}
DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "meld"
tr = read(DATA / "train_sent_emo.csv"); dv = read(DATA / "dev_sent_emo.csv")
ids = sorted(tr); rng = random.Random(a.seed); rng.shuffle(ids); nval = len(ids) // 10
val = {k: tr[k] for k in ids[:nval]}; trn = {k: tr[k] for k in ids[nval:]}
tok = AutoTokenizer.from_pretrained(a.encoder)
def examples(dias):
    out = []
    for k, utts in dias.items():
        for i, (_, spk, text, y) in enumerate(utts):
            ctx = [f"{s}: {t}" for _, s, t, _ in utts[max(0, i - a.context):i]] if a.context else []
            out.append((" ".join(ctx), f"{spk}: {text}", y))
    return out
E = {n: examples(d) for n, d in (("train", trn), ("val", val), ("dev", dv))}
if a.limit: E = {k: v[: a.limit] for k, v in E.items()}
print({k: len(v) for k, v in E.items()}, flush=True)
def enc(batch):
    """Tokenise (context, utterance) pairs; the context loses its OLDEST word pieces first (left truncation)."""
    ctx = [c for c, _, _ in batch]; cur = [u for _, u, _ in batch]
    if a.context:
        return tok(ctx, cur, truncation="only_first", max_length=a.max_len, padding=True, return_tensors="pt")
    return tok(cur, truncation=True, max_length=a.max_len, padding=True, return_tensors="pt")
tok.truncation_side = "left"
class M(torch.nn.Module):
    def __init__(s):
        super().__init__(); s.enc = AutoModel.from_pretrained(a.encoder); h = s.enc.config.hidden_size
        s.drop = torch.nn.Dropout(0.1); s.head = torch.nn.Linear(h, len(CLASSES))
    def forward(s, t):
        o = s.enc(**t).last_hidden_state
        # pool over the current utterance's tokens: BERT has token_type_ids; mpnet has not -> last segment after
        # the last sep
        m = t["attention_mask"].clone()
        if "token_type_ids" in t and a.context: m = m * t["token_type_ids"]
        elif a.context:
            sep = tok.sep_token_id; ids = t["input_ids"]
            # tokens after the 2nd-to-last sep (pair: <s> A </s></s> B </s>)
            pos = (ids == sep).cumsum(1); last = pos.max(1, keepdim=True).values
            m = m * (pos >= last - 1).long() * (ids != sep).long()
        m = m.unsqueeze(-1).float()
        return s.head(s.drop((o * m).sum(1) / m.sum(1).clamp(min=1)))
model = M()
layers = model.enc.encoder.layer
if a.top:
    for p in model.enc.parameters(): p.requires_grad = False
    for l in layers[len(layers) - a.top:]:
        for p in l.parameters(): p.requires_grad = True
params = [p for p in model.parameters() if p.requires_grad]
print("trainable", sum(p.numel() for p in params), flush=True)
opt = torch.optim.AdamW([{"params": [p for p in model.enc.parameters() if p.requires_grad], "lr": a.lr},
                         {"params": model.head.parameters(), "lr": 1e-3}], weight_decay=0.01)
steps = a.epochs * math.ceil(len(E["train"]) / a.bs)
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: min(1.0, s / (0.06 * steps)) * max(0.0, (steps - s) / (steps * 0.94)))
def batches(ex, shuffle):
    idx = list(range(len(ex)))
    if shuffle:
        random.shuffle(idx)
        # bucket by length within chunks of 50 batches to cut padding
        ch = a.bs * 50
        idx = sum([sorted(idx[i:i+ch], key=lambda j: len(ex[j][0]) + len(ex[j][1]))
                   for i in range(0, len(idx), ch)], [])
        bl = [idx[i:i+a.bs] for i in range(0, len(idx), a.bs)]; random.shuffle(bl); return bl
    idx.sort(key=lambda j: len(ex[j][0]) + len(ex[j][1]))
    return [idx[i:i+64] for i in range(0, len(idx), 64)]
@torch.no_grad()
def evaluate(ex):
    model.eval(); P = np.zeros((len(ex), len(CLASSES)), np.float32)
    for b in batches(ex, False):
        P[b] = model(enc([ex[j] for j in b])).float().numpy()
    y = np.array([e[2] for e in ex]); p = P.argmax(1)
    return dict(wf1=100 * f1_score(y, p, average="weighted"), mf1=100 * f1_score(y, p, average="macro"),
                acc=100 * accuracy_score(y, p)), P
hist = []; t0 = time.time(); step = 0; best = -1
for ep in range(a.epochs):
    model.train()
    for b in batches(E["train"], True):
        x = enc([E["train"][j] for j in b]); y = torch.tensor([E["train"][j][2] for j in b])
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step(); sched.step(); step += 1
        if step % 50 == 0:
            print(f"ep {ep} step {step}/{steps} loss {loss.item():.3f} {time.time()-t0:.0f}s", flush=True)
    mv, Pv = evaluate(E["val"]); md, Pd = evaluate(E["dev"])
    hist.append(dict(epoch=ep + 1, val=mv, dev=md, t=time.time() - t0)); print(hist[-1], flush=True)
    if mv["wf1"] > best:
        best = mv["wf1"]; np.save(a.out + ".val_logits.npy", Pv); np.save(a.out + ".dev_logits.npy", Pd)
    json.dump(dict(args=vars(a), hist=hist), open(a.out + ".json", "w"), indent=1)
