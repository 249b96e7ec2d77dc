"""Time to train Multi-Object task models to the paper's criterion (trial accuracy >= 99.99% on fresh training
and validation sequences). Prints one line per architecture: `<arch>_train_s: <seconds>` and the accuracy reached.

    python benchmarks/train_speed.py                  # gru, lstm, transformer, seed 0
    python benchmarks/train_speed.py --archs gru --seed 1

Target (SPEC section 9): GRU <= 60 s on a 2-core CPU. Wall-clock times depend on what else runs on the machine, so
the load average is printed before and after."""
import os
# Idle OpenMP threads otherwise spin; when the cores are shared that makes torch many times slower.
os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
import argparse, time

import torch

from mas_nb.models import ARCHS
from mas_nb.training import train_model


def load() -> str:
    return ' '.join(f"{x:.2f}" for x in os.getloadavg())


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--archs', nargs='+', default=list(ARCHS), choices=ARCHS)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: torch decides)')
    args = p.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus, load average {load()}")
    for arch in args.archs:
        t0 = time.perf_counter()
        model = train_model('multiobject', arch, seed=args.seed, progress=False)
        seconds = time.perf_counter() - t0
        acc = model.accuracy
        print(f"{arch}_train_s: {seconds:.1f}  (steps {acc['steps']}, trial accuracy train {acc['train']:.4f}, "
              f"valid {acc['valid']:.4f}; load average {load()})", flush=True)


if __name__ == '__main__':
    main()
