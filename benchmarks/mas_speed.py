"""MAS speed on this machine, printed as `name: value` lines.

1. mas_time_to_0.99_s: wall time of `fit_mas` between two Multi-Object GRU seeds (Full variable, hidden state,
   k = 64) until the worst direction reaches IIA >= 0.99 on 1 000 held-out validation interventions; data
   generation, latent caching and the final test evaluation included.
2. speedup_vs_hooked: training throughput (interventions per second) of our MAS step against a straightforward
   implementation of the same computation, written below: every step runs both models position by position
   (embedding, GRU step, head), a forward hook on the GRU reads the source state and swaps the target state at
   each row's site; same batches, same loss, same alignments and optimiser. Both run under the same threading,
   alternately for ROUNDS rounds; each keeps its best round, so a busy moment on a shared machine hurts neither.

Run: .venv/bin/python benchmarks/mas_speed.py   (the two GRUs are trained once and cached)
Threading follows the environment (printed): OMP_WAIT_POLICY=PASSIVE, which the test suite uses when cores are
shared, slows both, the per-position baseline more.
"""
import os
import time

import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from mas_nb.checkpoints import cached_model
from mas_nb.mas import fit_mas, batch_rows, build_directions, make_alignments, mas_spec, train_step
from mas_nb.interventions import interchange

BATCH, SEED = 128, 0  # interventions per direction per step, fit_mas's default
ROUNDS = 3


def hooked_logits(model, ids, pos, swap):
    """Step `model` through `ids` one position at a time (embedding, GRU step, head), as a generation loop would;
    a forward hook on the GRU replaces the state of the rows whose site is the current position by `swap(state, rows)`."""
    t_now = [0]
    def hook(module, inputs, output):
        out, h = output
        rows = pos == t_now[0]
        if not rows.any(): return output
        new = out[:, 0].clone()
        new[rows] = swap(out[rows, 0], rows)
        return new[:, None], new[None]
    handle = model.rnn.register_forward_hook(hook)
    try:
        h, logits = None, []
        for t in range(ids.shape[1]):
            t_now[0] = t
            out, h = model.rnn(model.embed(ids[:, t:t + 1]), h)
            logits.append(model.head(out))
        return torch.cat(logits, 1)
    finally:
        handle.remove()


def hooked_step_loss(models, spec, alignments, dirs, step):
    "The same loss as `train_step`'s on its batches, computed the straightforward way: no cached latents, no fused passes."
    losses = []
    for d, idx in batch_rows(spec, dirs, step):
        iv = d.splits['train'].iv[idx]
        h_src = torch.zeros(len(iv), models[d.src].rnn.hidden_size)
        def read(state, rows): h_src[rows] = state; return state
        with torch.no_grad(): hooked_logits(models[d.src], iv.src_ids, iv.src_pos, read)
        swap = lambda state, rows: interchange(state, h_src[rows], alignments[d.trg], alignments[d.src], spec.k)
        logits = hooked_logits(models[d.trg], iv.cf_ids, iv.trg_pos, swap)
        m = iv.label_mask[:, 1:]
        losses.append(F.cross_entropy(logits[:, :-1][m], iv.cf_ids[:, 1:][m]))
    return torch.stack(losses).mean()


def throughput(step, n_steps):
    "Interventions per second of `step(i)`, one full optimiser step on a batch per direction (4 directions)."
    start = time.perf_counter()
    for i in range(n_steps): step(i)
    return n_steps * 4 * BATCH / (time.perf_counter() - start)


def hooked_step(models, spec, alignments, dirs, opt, step):
    with parametrize.cached():
        loss = hooked_step_loss(models, spec, alignments, dirs, step)
        opt.zero_grad(); loss.backward(); opt.step()


def main():
    torch.manual_seed(SEED)
    models = [cached_model('multiobject', 'gru', seed) for seed in (0, 1)]
    for m in models: m.eval().requires_grad_(False)
    print(f"torch_threads: {torch.get_num_threads()}")
    print(f"omp_wait_policy: {os.environ.get('OMP_WAIT_POLICY', 'default')}")

    start = time.perf_counter()
    res = fit_mas(models, 'multiobject', 'full', 'hidden', k=64, threshold=0.99, eval_every=25, max_steps=3000,
                  n_valid=1000, n_test=1000, seed=SEED, progress=False)
    elapsed = time.perf_counter() - start
    print(res.table())
    print(f"mas_steps_to_0.99: {res.best_step}")
    print(f"mas_valid_worst_iia: {min(res.history[-1]['valid_iia'].values()):.4f}")
    print(f"mas_test_worst_iia: {res.worst_iia:.4f}")
    print(f"mas_time_to_0.99_s: {elapsed:.1f}")

    spec = mas_spec(models, tasks='multiobject', k=64, n_train=10_000, n_valid=1, n_test=1, batch_size=BATCH, seed=SEED)
    alignments = make_alignments([128, 128], spec)
    dirs = build_directions(models, alignments, spec, dict(train=10_000))
    opt = torch.optim.Adam(alignments.parameters(), lr=1e-3)
    ours, hooked = 0., 0.
    for _ in range(ROUNDS):
        ours = max(ours, throughput(lambda i: train_step(models, spec, dirs, opt, i), n_steps=40))
        hooked = max(hooked, throughput(lambda i: hooked_step(models, spec, alignments, dirs, opt, i), n_steps=8))
    print(f"ours_interventions_per_s: {ours:.0f}")
    print(f"hooked_interventions_per_s: {hooked:.0f}")
    print(f"speedup_vs_hooked: {ours / hooked:.1f}")


if __name__ == '__main__':
    main()
