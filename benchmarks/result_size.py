"""Size on disk of a saved MAS result against the training checkpoint of the same run, at the widths of the paper's
language-model pair (DeepSeek-R1-Distill-Qwen-1.5B: hidden 1536, k = 768, `rotation='rows'`, the `llm_mas` default).

    python benchmarks/result_size.py                 # hidden 1536, k = hidden / 2
    python benchmarks/result_size.py --hidden 256

Only the alignments and the site width matter for the sizes, so the two models are random one-layer Qwen2 models of
that hidden width over a tiny vocabulary (one training step); the saved folder and the checkpoint hold the same run.
Prints `result_<file>_bytes`, `result_total_bytes`, `checkpoint_bytes` and their ratio."""
import os
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import argparse, tempfile
from pathlib import Path

import torch

from mas_nb.llm import Generations, HFCausalLM, llm_mas, tiny_qwen2, tiny_tokenizer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--hidden', type=int, default=1536)
    ap.add_argument('--rotation', default='rows', choices=['rows', 'full'])
    a = ap.parse_args()
    tok = tiny_tokenizer(['a b c d e f g h'])
    lms = [HFCausalLM(tiny_qwen2(tok, hidden=a.hidden, layers=1, heads=4, seed=s), tok, f"m{s}") for s in (0, 1)]
    g = torch.Generator().manual_seed(0)
    gens = [Generations(torch.randint(4, len(tok), (8, 24), generator=g), 4, f"m{s}") for s in (0, 1)]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        res = llm_mas(lms, gens, index_range=(1, 10), n_train=8, n_valid=4, n_test=4, batch_size=4, max_steps=1, eval_every=1,
                      rotation=a.rotation, checkpoint=d / 'run.pt', out=d / 'result', progress=False)
        files = {p.name: p.stat().st_size for p in sorted((d / 'result').iterdir())}
        ck = (d / 'run.pt').stat().st_size
    print(f"shape: hidden {a.hidden}, k {res.k}, rotation={a.rotation}, 2 models")
    for name, size in files.items(): print(f"result_{name}_bytes: {size}")
    total = sum(files.values())
    print(f"result_total_bytes: {total} ({total / 2**20:.1f} MiB)")
    print(f"checkpoint_bytes: {ck} ({ck / 2**20:.1f} MiB)")
    print(f"checkpoint_over_result: {ck / total:.2f}")


if __name__ == '__main__':
    main()
