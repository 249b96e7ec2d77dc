"""Language-model MAS step against pyvene 0.1.8 and against the frozen model's own cost, printed as `key: value` lines.

The workload (issue 13, item 5): a random `Qwen2ForCausalLM` (hidden 256, 2 layers, 4 heads, 2 KV heads, intermediate
1024; vocab 32 000, then 151 936), random "generations" `[n, 32 + 64]`, stepwise interchange interventions at the
embedding with the intervention index t drawn from 32 + 10 .. 32 + 54, k = d/2, B = 32 interventions per step.
Three contenders run the same batches (the batch of our step i is drawn again for the others):

- ours: DAS (`method='das'`, one model, one direction) through `mas_spec`, `prepare`, `train_step`.
- pyvene: `pyvene.IntervenableModel` with a `RotatedSpaceIntervention` (interchange dim k, `keep_last_dim=True` so the
  rotation acts on each position's d-vector) on component `block_input` of layer 0, which is the embedding output in
  Qwen2. The base is the counterfactual sequence, the source the source sequence, run through the same model by
  pyvene itself. pyvene takes one rectangular list of positions per batch, so every row is intervened at 0..max(t)
  of the batch: at a row's positions after its own t the base and source carry the same token (the counterfactual
  sequence continues with the source's tokens), so there the interchange is the identity (R^T R h = h) with zero
  gradient on the orthogonal group; the computation equals intervening at 0..t per row. The loss is ours: mean
  cross-entropy on the counterfactual tokens after t, here from the full `[B, L, V]` logits the model returns, as a
  pyvene user gets them. Adam on the rotation. Before timing, the script copies our rotation into pyvene's and
  prints both losses on one batch (`check_*`): they must agree to float tolerance.
- floor: the frozen model's forward and backward with respect to its input embeddings, the loss at the scored
  tokens only (hidden states gathered there, then the LM head): what any method must at least pay.

Timing: alternating rounds in one process, each contender `--steps` optimiser steps a round after one warm-up step,
best round kept (a busy moment on a shared machine hurts none of them). Memory is measured afterwards, one step per
contender, as the most tensor memory alive at once above the step's start: on CUDA `torch.cuda.max_memory_allocated`;
on the CPU every allocation and free of torch's CPU allocator recorded by `torch.profiler` and summed in time order
(`PeakMemory`; the process's resident set is no measure: glibc keeps freed small blocks). Then a 256-row evaluation
at the last vocabulary (`evaluate_direction` on a 256-row validation split): its time, and its peak above the models
(the split's cached latents plus the transient peak of the evaluation itself).

Options the trainer is getting (`rotation='full'|'rows'`, `latents='cached'|'cpu'|'batch'`) are passed through
`mas_spec` when this mas_nb has them (`--rotation full,rows --latents batch` runs one "ours" per combination);
without them the script runs the default path and says so.

Run:  .venv/bin/python benchmarks/llm_speed.py 2>/dev/null     (stderr carries torch.profiler's start/stop notes)
      .venv/bin/python benchmarks/llm_speed.py --vocab 32000 --steps 2 --rounds 2   (a quick look)
With --steps 2 --rounds 2 it took 17 minutes on a busy 2-core CPU (a pyvene step at vocab 151 936: 16 s there).
pyvene: `pip install pyvene==0.1.8` (in the dev extra; it leaves torch and transformers as they are). Without it the
pyvene lines are skipped with a message.
Threading follows the environment (printed); on a shared machine use OMP_WAIT_POLICY=PASSIVE.
"""
import os
import argparse, contextlib, gc, inspect, io, itertools, time
from dataclasses import replace

import torch
import torch.nn.functional as F

from mas_nb.hf import HFCausalLM
from mas_nb.llm import Generations, TokenInterventions
from mas_nb.mas import mas_spec, prepare, train_step, evaluate_direction, fit_mas, batch_rows

PROMPT, NEW, INDEX_RANGE, SEED = 32, 64, (10, 54), 0
SHAPES = {'small': dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=1024),
          # DeepSeek-R1-Distill-Qwen-1.5B's shapes (the paper's models), for a GPU
          'paper': dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, intermediate_size=8960)}
COMING = ('rotation', 'latents')  # mas_spec options passed through when this mas_nb has them


# ---------------------------------------------------------------- memory
class PeakMemory:
    """Memory of the tensors allocated in a `with` block, in bytes: `.peak` (the most alive at once, above the start)
    and `.net` (still alive at the end). CUDA: the caching allocator's `max_memory_allocated` / `memory_allocated`.
    CPU: every allocation and free of torch's CPU allocator as recorded by `torch.profiler` (`profile_memory=True`),
    summed in time order; like the CUDA count, it sees tensors, not the C library's heap (whose resident set keeps
    freed small blocks and so overstates a step's needs)."""
    def __init__(self, device):
        self.device = torch.device(device)

    @staticmethod
    def how(device) -> str:
        if torch.device(device).type == 'cuda': return 'cuda max_memory_allocated above the start'
        return 'cpu tensor bytes alive at once above the start (allocations and frees recorded by torch.profiler)'

    def __enter__(self):
        gc.collect()
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            from torch.profiler import profile, ProfilerActivity
            self.prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
            self.prof.__enter__()
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.start
            self.net = torch.cuda.memory_allocated(self.device) - self.start
        else:
            self.prof.__exit__(*exc)
            events = sorted((e.start_ns(), e.nbytes()) for e in self.prof.profiler.kineto_results.events()
                            if e.name() == '[memory]' and e.device_type() == torch.autograd.DeviceType.CPU)
            alive = self.peak = 0
            for _, n in events:
                alive += n
                self.peak = max(self.peak, alive)
            self.net = alive
            del self.prof
        return False


def mb(n_bytes) -> str: return f"{n_bytes / 2**20:.1f}"


def sync(device):
    if torch.device(device).type == 'cuda': torch.cuda.synchronize(device)


# ---------------------------------------------------------------- setup
def random_qwen2(vocab, device, shape='small', seed=SEED):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=vocab, max_position_embeddings=512, tie_word_embeddings=False, **SHAPES[shape])
    torch.manual_seed(seed)
    with torch.device(device): return Qwen2ForCausalLM(cfg).eval()


def random_generations(vocab, n, name, seed):
    g = torch.Generator().manual_seed(seed)
    return Generations(torch.randint(vocab, (n, PROMPT + NEW), generator=g), prompt_len=PROMPT, name=name)


def supported_options() -> set:
    return {o for o in COMING if o in inspect.signature(fit_mas).parameters}


def ours_variants(args) -> list[dict]:
    "One dict of extra `mas_spec` options per 'ours' contender (empty: the default path)."
    have, axes = supported_options(), []
    for opt in COMING:
        asked = getattr(args, opt)
        values = asked.split(',') if asked else (['full', 'rows'] if opt == 'rotation' and opt in have else [None])
        if opt not in have and values != [None]:
            print(f"note: this mas_nb has no {opt!r} option; running the default path instead of {opt}={asked}")
            values = [None]
        axes.append([(opt, v) for v in values])
    return [{k: v for k, v in combo if v is not None} for combo in itertools.product(*axes)]


def variant_name(extra: dict) -> str:
    return 'ours' + ''.join(f"_{v}" for v in extra.values())


class Ours:
    "DAS through the trainer's step-by-step API."
    def __init__(self, hf, ti, k, batch, n_train, extra, n_valid=1, eval_batch=256):
        self.models = [hf]
        self.spec = mas_spec(self.models, variable='tokens', sites='embedding', method='das', stepwise=True, k=k,
                             n_train=n_train, n_valid=n_valid, n_test=1, batch_size=batch, eval_batch_size=eval_batch,
                             interventions=ti, **extra)
        self.alignments, self.dirs = prepare(self.models, self.spec, ti)
        self.opt = torch.optim.Adam(self.alignments.parameters(), lr=1e-3)

    def step(self, i): return train_step(self.models, self.spec, self.dirs, self.opt, i)

    def batch(self, i):
        "The interventions `train_step(..., i)` trains on (its batch draw, repeated here for the other contenders), on the model's device."
        (d, idx), = batch_rows(self.spec, self.dirs, i)
        b, dev = d.splits['train'].iv[idx], self.models[0].device
        return replace(b, **{k: getattr(b, k).to(dev) for k in ('src_ids', 'src_pos', 'trg_ids', 'trg_pos', 'cf_ids', 'label_mask')})


def scored_loss(logits_or_states, iv, head=None):
    "Mean cross-entropy on the counterfactual tokens after t, from `[B, L, V]` logits or (with `head`) `[B, L, d]` states."
    m = iv.label_mask[:, 1:]
    x = logits_or_states[:, :-1][m]
    return F.cross_entropy((head(x) if head is not None else x).float(), iv.cf_ids[:, 1:][m])


class Floor:
    "The frozen model's forward and backward w.r.t. its input embeddings, the loss at the scored tokens only."
    def __init__(self, lm, batch_of):
        self.lm, self.batch_of = lm, batch_of

    def step(self, i):
        iv = self.batch_of(i)
        emb = self.lm.get_input_embeddings()(iv.cf_ids).detach().requires_grad_()
        h = self.lm.base_model(inputs_embeds=emb, use_cache=False).last_hidden_state
        loss = scored_loss(h, iv, self.lm.get_output_embeddings())
        loss.backward()
        return loss.detach()


class Pyvene:
    "pyvene 0.1.8: `IntervenableModel` + `RotatedSpaceIntervention` on the embedding output (layer 0's input)."
    def __init__(self, lm, k, batch_of):
        import pyvene as pv
        d = lm.config.hidden_size
        self.iv = pv.RotatedSpaceIntervention(embed_dim=d, keep_last_dim=True)
        self.iv.set_interchange_dim(k)
        rep = pv.RepresentationConfig(layer=0, component='block_input', unit='pos', intervention=self.iv)
        self.pm = pv.IntervenableModel(pv.IntervenableConfig(representations=[rep]), lm)
        self.pm.set_device(lm.device)
        self.pm.disable_model_gradients()
        self.opt = torch.optim.Adam(self.pm.get_trainable_parameters(), lr=1e-3)
        self.batch_of = batch_of

    def loss(self, iv):
        P = int(iv.trg_pos.max()) + 1  # one rectangular location list: 0..max(t) for every row (see the docstring)
        where = [[list(range(P))] * len(iv)]
        _, out = self.pm({'input_ids': iv.cf_ids}, [{'input_ids': iv.src_ids}], {'sources->base': (where, where)})
        return scored_loss(out.logits, iv)

    def step(self, i):
        self.opt.zero_grad()
        loss = self.loss(self.batch_of(i))
        loss.backward()
        self.opt.step()
        return loss.detach()

    def reset(self):
        "A fresh random rotation and optimiser (after `copy_rotation`)."
        with torch.no_grad(): self.iv.rotate_layer.weight = torch.nn.init.orthogonal_(torch.empty_like(self.iv.rotate_layer.weight))
        self.opt = torch.optim.Adam(self.pm.get_trainable_parameters(), lr=1e-3)

    @torch.no_grad()
    def copy_rotation(self, alignment, k):
        """Set pyvene's rotation W (z = h W) to ours: its first k columns span our first k aligned rows Q_k (Eq. 6 reads
        only those: h_v = h_t + Q_kᵀ Q_k (h_s - h_t)); the rest completes an orthonormal basis."""
        Qk = alignment.Q[:k].detach().float()
        d = Qk.shape[1]
        fill = torch.randn(d, d - k, generator=torch.Generator().manual_seed(1)).to(Qk)
        W, _ = torch.linalg.qr(torch.cat([Qk.T, fill], 1))
        W[:, :k] = Qk.T  # QR may flip signs; the first k columns are Q_kᵀ itself
        self.iv.rotate_layer.weight = W


def check_match(ours, pv, k) -> dict:
    "Both losses on step 0's batch with pyvene's rotation copied from ours (the same function, so the same loss)."
    a = ours.alignments[0]
    if not hasattr(a, 'Q'): return dict(check='skipped (this alignment exposes no Q)')
    pv.copy_rotation(a, k)
    with torch.no_grad(): l_pv = float(pv.loss(ours.batch(0)))
    l_ours = float(train_step(ours.models, ours.spec, ours.dirs, torch.optim.Adam(ours.alignments.parameters(), lr=0.0), 0))
    return dict(check_loss_ours=f"{l_ours:.6f}", check_loss_pyvene=f"{l_pv:.6f}", check_abs_diff=f"{abs(l_ours - l_pv):.2e}")


# ---------------------------------------------------------------- timing
def best_step_ms(contenders: dict, steps: int, rounds: int, device) -> dict:
    "Per-step time (ms) of each contender: one warm-up step each, then alternating rounds, best round kept."
    counter = itertools.count(1)
    for c in contenders.values(): c.step(next(counter))
    sync(device)
    best = {name: float('inf') for name in contenders}
    for _ in range(rounds):
        for name, c in contenders.items():
            i0 = next(counter)
            for _ in range(steps - 1): next(counter)
            sync(device)
            t = time.perf_counter()
            for i in range(i0, i0 + steps): c.step(i)
            sync(device)
            best[name] = min(best[name], (time.perf_counter() - t) / steps * 1e3)
    return best


def cached_bytes(split, device) -> int:
    "Bytes of a split's frozen latents held on `device` (a `SiteLatents`' cache, or a plain tensor)."
    held = [getattr(x, 'cache', x) for x in (split.h_src, split.h_trg)]
    return sum(x.numel() * x.element_size() for x in held
               if isinstance(x, torch.Tensor) and x.device.type == torch.device(device).type)


def peak_bytes(fn, device) -> int:
    with PeakMemory(device) as pm: fn(); sync(device)
    return pm.peak


class VocabRun:
    "The contenders at one vocabulary size on one random model; timed first, their memory probed afterwards."
    def __init__(self, vocab, args, device, pyvene_ok):
        self.vocab, self.args, self.device, self.out = vocab, args, device, {'vocab': vocab}
        self.lm = random_qwen2(vocab, device, args.shape).requires_grad_(False)  # frozen throughout
        self.out['model_params_mb'] = mb(sum(p.numel() * p.element_size() for p in self.lm.parameters()))
        self.hf = HFCausalLM(self.lm, None, 'a')
        self.k = self.lm.config.hidden_size // 2
        self.ti = TokenInterventions([random_generations(vocab, args.rows, 'a', SEED)], index_range=INDEX_RANGE)
        self.ours = {variant_name(x): Ours(self.hf, self.ti, self.k, args.batch, args.n_train, x) for x in ours_variants(args)}
        first = next(iter(self.ours.values()))
        self.contenders = dict(self.ours)
        if pyvene_ok:
            pv = self.contenders['pyvene'] = Pyvene(self.lm, self.k, first.batch)
            for name, o in self.ours.items():
                self.out.update({f"{key}_{name}": v for key, v in check_match(o, pv, self.k).items()})
            pv.reset()
        self.contenders['floor'] = Floor(self.lm, first.batch)
        self.evals, self.eval_cache = {}, {}

    def time_steps(self):
        times = best_step_ms(self.contenders, self.args.steps, self.args.rounds, self.device)
        for name in self.contenders: self.out[f"{name}_step_ms"] = f"{times[name]:.1f}"
        for name in self.ours:
            self.out[f"{name}_over_floor"] = f"{times[name] / times['floor']:.2f}"
            if 'pyvene' in times: self.out[f"pyvene_over_{name}"] = f"{times['pyvene'] / times[name]:.2f}"

    def time_eval(self):
        "A 256-row evaluation (`evaluate_direction` on a validation split of `--eval-rows`): best time of the rounds."
        a = self.args
        for extra in ours_variants(a):
            name = variant_name(extra)
            run = Ours(self.hf, self.ti, self.k, a.batch, 1, extra, n_valid=a.eval_rows, eval_batch=a.eval_batch)
            ev = self.evals[name] = lambda run=run: evaluate_direction(run.models, run.spec, run.dirs[0], 'valid')
            ev()
            best = float('inf')
            for _ in range(a.rounds):
                sync(self.device); t = time.perf_counter(); ev(); sync(self.device)
                best = min(best, time.perf_counter() - t)
            cache = cached_bytes(run.dirs[0].splits['valid'], self.device)
            self.out[f"eval_{name}_rows"] = a.eval_rows
            self.out[f"eval_{name}_rows_a_pass"] = min(a.eval_batch, a.eval_rows)
            self.out[f"eval_{name}_ms"] = f"{best * 1e3:.0f}"
            self.out[f"eval_{name}_latents_cache_mb"] = mb(cache)
            self.eval_cache[name] = cache

    def probe_memory(self):
        for name, c in self.contenders.items():
            self.out[f"{name}_peak_mb"] = mb(peak_bytes(lambda: c.step(10**6 + 1), self.device))
        for name, ev in self.evals.items():
            peak = peak_bytes(ev, self.device)
            self.out[f"eval_{name}_transient_peak_mb"] = mb(peak)
            self.out[f"eval_{name}_above_models_mb"] = mb(self.eval_cache[name] + peak)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--vocab', type=int, nargs='+', default=[32_000, 151_936])
    p.add_argument('--shape', choices=SHAPES, default='small', help="'small' (hidden 256, 2 layers) or 'paper' (the 1.5B model's, fp32)")
    p.add_argument('--batch', type=int, default=32, help='interventions per training step')
    p.add_argument('--steps', type=int, default=5, help='timed steps per contender per round')
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--rows', type=int, default=512, help='random generations to draw interventions from')
    p.add_argument('--n-train', type=int, default=1024, help='training interventions (their latents are prepared up front)')
    p.add_argument('--eval-rows', type=int, default=256)
    p.add_argument('--eval-batch', type=int, default=256, help='spec.eval_batch_size: rows per evaluation pass')
    p.add_argument('--no-eval', action='store_true')
    p.add_argument('--no-pyvene', action='store_true')
    p.add_argument('--rotation', default=None, help="comma list of rotation= values (default: full,rows when supported)")
    p.add_argument('--latents', default=None, help="comma list of latents= values (default: the trainer's default)")
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--threads', type=int, default=None)
    args = p.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    pyvene_ok = False
    if not args.no_pyvene:
        try:
            with contextlib.redirect_stdout(io.StringIO()): import pyvene  # noqa: F401  (it prints a note about nnsight)
            pyvene_ok = True
        except ImportError:
            print("pyvene: not installed (pip install pyvene==0.1.8); its lines are skipped")
    import transformers
    print(f"device: {device}")
    print(f"torch: {torch.__version__}")
    print(f"transformers: {transformers.__version__}")
    if pyvene_ok:
        from importlib.metadata import version
        print(f"pyvene: {version('pyvene')}")
    print(f"torch_threads: {torch.get_num_threads()}")
    print(f"omp_wait_policy: {os.environ.get('OMP_WAIT_POLICY', 'default')}")
    print(f"load_avg_start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"mas_spec_options: {sorted(supported_options()) or 'none of ' + '/'.join(COMING)}")
    shape = SHAPES[args.shape]
    print(f"shape: hidden {shape['hidden_size']}, layers {shape['num_hidden_layers']}, heads {shape['num_attention_heads']}/"
          f"{shape['num_key_value_heads']} kv, intermediate {shape['intermediate_size']}; L = {PROMPT}+{NEW} tokens, "
          f"t in {PROMPT}+{INDEX_RANGE[0]}..{PROMPT}+{INDEX_RANGE[1]}, k = d/2, batch {args.batch}")
    print(f"timing: best of {args.rounds} alternating rounds of {args.steps} steps, after one warm-up step each")
    print(f"memory: {PeakMemory.how(device)}")
    runs = [VocabRun(vocab, args, device, pyvene_ok) for vocab in args.vocab]
    for run in runs: run.time_steps()  # all timing first, under the allocator's default behaviour
    if not args.no_eval: runs[-1].time_eval()
    for run in runs: run.probe_memory()
    for run in runs:
        for key, value in run.out.items(): print(f"{key}: {value}")
    print(f"load_avg_end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == '__main__':
    main()
