"""Memory of language-model MAS at the paper model's shapes, per phase, measured beside a formula for each.

    .venv/bin/python benchmarks/llm_memory.py --layers 1 2 --batch 8 16 --rows 8 --gen-batch 8 --n-train 64 \
        --n-valid 8 --n-test 4 --eval-batch 8 2>/dev/null    (CPU, fp32: checks the formulas; 25 min on a busy 2-core CPU)
    python benchmarks/llm_memory.py --layers 28 --batch 16 128 --device cuda --dtype bf16 --latents batch   (a GPU)

Two random `Qwen2ForCausalLM`s with the shapes of DeepSeek-R1-Distill-Qwen-1.5B (hidden d = 1536, 12 heads, 2 KV heads
of 128, intermediate I = 8960, vocab V = 151 936, untied head; L layers) go through the toxicity study's phases:
greedy generation (`mas_nb.llm.generate`: 64 new tokens from 32-token prompts), `prepare` (splits, frozen latents),
MAS training steps (`train_step`: two models, four directions, stepwise at the embedding, `--batch` interventions per
direction, k = d/2) and one evaluation (`evaluate_direction` on every direction's validation split). Each phase prints
its peak memory above its start (on CUDA `max_memory_allocated`; on the CPU the tensor bytes alive at once, from
torch.profiler's allocation records, see `llm_speed.PeakMemory`) beside the formula below, then the formulas are extrapolated to 28 layers in bf16.

The formulas (bytes; b = bytes per element of the model's dtype, d_kv = 2 x 128 = 256, S = 96 tokens per sequence,
P = 32 + 54 + 1 = 87 stepwise latent positions, k = d/2):
- models: 2 x b x [2 V d + L (2 d^2 + 2 d d_kv + d + 2 d_kv + 3 d I + 2 d) + d] (embedding, head, layers, norms).
- generate (one call, G prompts of 32 tokens): KV cache 2 L G (32 + 64) d_kv b + the prefill MLP's 3 G 32 I b + the
  last position's logits G V (b + 4) (model dtype, then float32 for the argmax).
- latents ('cached' on the device; 'cpu' keeps them in host memory, the same bytes; 'batch' keeps none): 2 x 4 directions x
  (n_train + n_valid + n_test) x P x d x b, persistent. While one tensor is built its full-length chunks n S d b live
  beside it (the chunks are sliced by views). Without a device cache, `prepare` peaks while it initialises the scales
  from the latents' norms: 1024 training rows at a time, P d (b + 4) bytes each.
- training step, per target model (two directions, so R = 2B rows, backpropagated before the next target's pass):
  the graph L R S (3 I b + 2 d 4 + 2 (d + d_kv) b) (per layer and token: the SiLU input, its output and the up
  projection; two RMSNorm inputs in float32; q, k, v and the attention output), the hidden stream 4 R S d b, the
  interchange B P (3 d 4 + d b) per direction ('full': float32 latents and the rotated vector kept; 'rows':
  2 d 4 + k 4 + d b), the alignments' d x d matrix_exp and its backward about 12 d^2 4 ('full'; 'rows' 4 k d 4), plus
  the larger of two peaks: one chunk of scored-only logits c V x 12 at the end of the forward pass, where each chunk's
  gradient is taken at once (fp32; 14 in bf16: the float32 log-softmax output, its gradient and the logits'
  gradient), c = min(m, READOUT_BUDGET / V)
  scored states (110 at V = 151 936 with the trainer's 2^24 budget; m, about R x 31, if it reads out all at once), or
  one layer's gradients in the backward, 3 R S I b. With `--recompute-layers` the graph keeps only each layer's
  input, L R S d b, and the backward adds the graph of the one layer it recomputes. (The training-step line also
  prints the saved graph measured exactly with autograd's saved-tensor hooks beside the sum of the first three terms.)
- evaluation (no gradients; E rows a pass): the intervened latents E P d b, plus the largest stage: the interchange
  E P d (5 x 4 full, 3 x 4 rows, + 2 b for the fetched latents), a decoder layer 3 E S I b + 4 E S d b + E S d 4 (MLP,
  hidden stream, RMSNorm in float32), or the readout E S d b + c_E V b (c_E = min(m_E, READOUT_BUDGET / V) scored states
  a chunk, m_E about E x 31).
A phase's total is the models, plus the latents held on the device, plus that phase's peak.
"""
import os
import argparse, gc, itertools, sys, time, traceback, warnings
from dataclasses import dataclass, replace

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llm_speed import PeakMemory, cached_bytes, mb, supported_options  # noqa: E402

from mas_nb.hf import HFCausalLM  # noqa: E402
from mas_nb.llm import TokenInterventions, generate  # noqa: E402
from mas_nb import mas as _mas  # noqa: E402
from mas_nb.mas import mas_spec, prepare, train_step, evaluate_direction, batch_rows, _frozen  # noqa: E402

READOUT_BUDGET = getattr(_mas, 'READOUT_BUDGET', None)  # logits read out at once (None: all scored logits at once)

PROMPT, NEW, INDEX_RANGE, SEED = 32, 64, (10, 54), 0
S, P = PROMPT + NEW, PROMPT + INDEX_RANGE[1] + 1
MEAN_SCORED = S - 1 - (PROMPT + sum(INDEX_RANGE) / 2)  # scored tokens per row on average: 31
PAPER = dict(n_train=10_000, n_valid=1_000, n_test=1_000, gen_batch=64, eval_batch=1024)
GiB = 2**30


@dataclass
class Shape:
    layers: int
    d: int = 1536
    heads: int = 12
    kv_heads: int = 2
    I: int = 8960
    V: int = 151_936

    @property
    def d_kv(self): return self.kv_heads * (self.d // self.heads)

    def params(self) -> int:
        d, dkv, I = self.d, self.d_kv, self.I
        layer = 2 * d * d + 2 * d * dkv + d + 2 * dkv + 3 * d * I + 2 * d
        return 2 * self.V * d + self.layers * layer + d


# ---------------------------------------------------------------- formulas (bytes)
def f_models(sh: Shape, b): return 2 * sh.params() * b

def f_generate(sh: Shape, b, G):
    return 2 * sh.layers * G * S * sh.d_kv * b + 3 * G * PROMPT * sh.I * b + G * sh.V * (b + 4)

def f_latents(sh: Shape, b, n_total, n_dirs=4):
    "Persistent cache of every split's latents, and the extra while the largest one is built (n: its rows)."
    return 2 * n_dirs * n_total * P * sh.d * b

def f_latents_build(sh: Shape, b, n_largest): return n_largest * S * sh.d * b

def f_norm_pass(sh: Shape, b, n_train, chunk=1024):
    "The scales' initialisation without a cache: one chunk of training latents at a time, and its float32 copy."
    return min(chunk, n_train) * P * sh.d * (b + 4)

def f_interchange(sh: Shape, b, rows, rotation, k):
    return rows * P * ((3 * sh.d * 4 if rotation == 'full' else 2 * sh.d * 4 + k * 4) + sh.d * b)

def logit_rows(sh: Shape, m):
    "Scored states whose logits exist at once: a chunk of READOUT_BUDGET logits when the trainer reads out in chunks."
    return min(m, max(1, READOUT_BUDGET // sh.V)) if READOUT_BUDGET else m

def f_layer_graph(sh: Shape, b, R):
    "What one decoder layer keeps for its backward, R rows."
    return R * S * (3 * sh.I * b + 2 * sh.d * 4 + 2 * (sh.d + sh.d_kv) * b)

def f_saved(sh: Shape, b, B, rotation, k, dirs_per_target=2, recompute=False):
    """What one target's pass keeps for its backward: the decoder layers (with `recompute`, only each layer's input
    R S d b), the interchanges, the rotation."""
    R = dirs_per_target * B
    return dict(graph=sh.layers * (R * S * sh.d * b if recompute else f_layer_graph(sh, b, R)), interchange=dirs_per_target * f_interchange(sh, b, B, rotation, k),
                rotation=12 * sh.d**2 * 4 if rotation == 'full' else 4 * k * sh.d * 4)

def f_train(sh: Shape, b, B, m, rotation, k, dirs_per_target=2, recompute=False):
    """One target's pass: what its graph keeps, the hidden stream, plus the larger of the two peaks of its backward
    (a chunk of logits and their gradients at the head first, then one decoder layer's gradients at a time)."""
    R = dirs_per_target * B
    parts = dict(f_saved(sh, b, B, rotation, k, dirs_per_target, recompute), stream=4 * R * S * sh.d * b,
                 logits=logit_rows(sh, m) * sh.V * (12 if b == 4 else 14),
                 backward=3 * R * S * sh.I * b + (f_layer_graph(sh, b, R) if recompute else 0))  # + the layer being recomputed
    return sum(parts.values()) - min(parts['logits'], parts['backward']), parts

def f_eval(sh: Shape, b, E, m_E, rotation):
    """One pass of E rows: the intervened latents it patches in, plus the largest of its stages' temporaries (the
    interchange, a decoder layer, the readout of a chunk of scored states)."""
    stages = dict(interchange=E * P * sh.d * ((5 if rotation == 'full' else 3) * 4 + 2 * b),
                  layer=3 * E * S * sh.I * b + 4 * E * S * sh.d * b + E * S * sh.d * 4,
                  readout=E * S * sh.d * b + logit_rows(sh, m_E) * sh.V * b)
    return E * P * sh.d * b + max(stages.values())


# ---------------------------------------------------------------- measurement
def random_qwen2(sh: Shape, dtype, device, seed):
    from transformers import Qwen2Config, Qwen2ForCausalLM
    cfg = Qwen2Config(vocab_size=sh.V, hidden_size=sh.d, intermediate_size=sh.I, num_hidden_layers=sh.layers,
                      num_attention_heads=sh.heads, num_key_value_heads=sh.kv_heads, max_position_embeddings=4096,
                      tie_word_embeddings=False)
    torch.manual_seed(seed)
    with torch.device(device): m = Qwen2ForCausalLM(cfg)
    return m.to(dtype).eval().requires_grad_(False)


def held_bytes(module) -> int:
    return sum(t.numel() * t.element_size() for t in itertools.chain(module.parameters(), module.buffers()))


def scored_per_target(spec, dirs, steps) -> int:
    "The most scored tokens one target's pass reads in `steps` (train_step's batches, from `batch_rows`)."
    most = 0
    for i in steps:
        per = {}
        for d, idx in batch_rows(spec, dirs, i):
            per[d.trg] = per.get(d.trg, 0) + int(d.splits['train'].iv.label_mask[idx][:, 1:].sum())
        most = max(most, *per.values())
    return most


class SavedGraph:
    """Bytes of the tensors autograd keeps for the backward (parameters and buffers excluded), per forward pass between
    two backward passes (train_step backpropagates each target's pass before the next): the graph exactly, whatever
    the allocator does. A chunk of logits lives only while its gradient is taken, so it is not counted."""
    def __init__(self, models):
        self.skip = {t.untyped_storage().data_ptr() for m in models for t in itertools.chain(m.parameters(), m.buffers())}
        self.groups, self.backward = [{}], False

    def pack(self, t):
        if self.backward: self.groups.append({}); self.backward = False
        st = t.untyped_storage()
        if st.data_ptr() not in self.skip: self.groups[-1][st.data_ptr()] = st.nbytes()
        return t.detach()  # t itself would tie a saved output to its own node: a reference cycle that outlives the pass

    def unpack(self, t):
        self.backward = True
        return t

    def __enter__(self):
        self.ctx = torch.autograd.graph.saved_tensors_hooks(self.pack, self.unpack)
        self.ctx.__enter__()
        return self

    def __exit__(self, *exc): return self.ctx.__exit__(*exc)

    @property
    def largest(self) -> int: return max(sum(g.values()) for g in self.groups)


class DeviceWaits:
    """On CUDA, the calls in a `with` block that make the host wait for the device (`torch.cuda.set_sync_debug_mode`):
    `.where` names each one by the innermost frames of its Python stack. Elsewhere `.where` is None: nothing waits."""
    def __init__(self, device): self.cuda, self.where = torch.device(device).type == 'cuda', None

    def show(self, message, category, filename, lineno, file=None, line=None):
        frames = [f for f in traceback.extract_stack()[:-1] if 'warnings' not in f.filename][-3:]
        if 'synchroniz' not in str(message) or frames[-1].name == 'set_sync_debug_mode': return  # not the mode's own switch
        self.where.append(' < '.join(f"{os.path.basename(f.filename)}:{f.lineno} {f.name}" for f in reversed(frames)))

    def __enter__(self):
        if self.cuda:
            self.where, self.record = [], warnings.catch_warnings()
            self.record.__enter__()
            warnings.simplefilter('always')
            warnings.showwarning = self.show
            torch.cuda.set_sync_debug_mode('warn')
        return self

    def __exit__(self, *exc):
        if not self.cuda: return
        torch.cuda.set_sync_debug_mode('default')
        self.record.__exit__(*exc)


def line(key, measured, formula, note=''):
    ratio = f", measured/formula {measured / formula:.2f}" if formula else ''
    print(f"{key}: {mb(measured)} MiB (formula {mb(formula)} MiB{ratio}){note}")


def run(sh: Shape, args, device, dtype, b):
    print(f"layers: {sh.layers}")
    with PeakMemory(device) as pm:
        models = [HFCausalLM(random_qwen2(sh, dtype, device, seed), None, name) for seed, name in ((0, 'a'), (1, 'b'))]
    line('models', pm.net, f_models(sh, b), f" [parameters and buffers: {mb(sum(held_bytes(m.lm) for m in models))} MiB]")

    prompts = torch.randint(sh.V, (args.rows, PROMPT), generator=torch.Generator().manual_seed(SEED))
    G, gens, peak, t = min(args.gen_batch, args.rows), [], 0, time.perf_counter()
    for hf in models:
        with PeakMemory(device) as pm: gens.append(generate(hf.lm, prompts, NEW, batch_size=G, name=hf.name, progress=False))
        peak = max(peak, pm.peak)
    line('generate_peak', peak, f_generate(sh, b, G), f" [G = {G} rows a call, {time.perf_counter() - t:.1f} s for both models]")

    extra = {o: getattr(args, o) for o in supported_options() if getattr(args, o)}
    if args.recompute_layers: extra['recompute_layers'] = True
    rotation, latents = extra.get('rotation', 'full'), extra.get('latents', 'cached')
    k = sh.d // 2
    ti = TokenInterventions(gens, index_range=INDEX_RANGE)
    with _frozen(models):
        spec = mas_spec(models, variable='tokens', sites='embedding', method='mas', stepwise=True, k=k, n_train=args.n_train,
                        n_valid=args.n_valid, n_test=args.n_test, batch_size=args.batch[0], eval_batch_size=args.eval_batch,
                        interventions=ti, **extra)
        with PeakMemory(device) as pm: alignments, dirs = prepare(models, spec, ti)
        held = sum(cached_bytes(sp, device) for d in dirs for sp in d.splits.values())
        n_total = args.n_train + args.n_valid + args.n_test
        on_device = latents == 'cached' or (latents == 'cpu' and torch.device(device).type == 'cpu')
        line('latents_held', pm.net, f_latents(sh, b, n_total) if on_device else 0,
             f" [latents={latents}; the latent caches alone: {mb(held)} MiB]")
        line('prepare_peak', pm.peak, (f_latents(sh, b, n_total) + f_latents_build(sh, b, args.n_train)) if on_device
             else f_norm_pass(sh, b, args.n_train))

        measured = {}
        opt = torch.optim.Adam(alignments.parameters(), lr=1e-3)
        for i in range(args.warmup):  # first-use allocations (thread pools, BLAS buffers, optimiser state) stay out of the peaks
            train_step(models, replace(spec, batch_size=min(args.batch)), dirs, opt, 10**6 + i)
        for B in args.batch:
            spec_b = replace(spec, batch_size=B)
            steps = range(args.steps)
            m = scored_per_target(spec_b, dirs, steps)
            t = time.perf_counter()
            with PeakMemory(device) as pm, SavedGraph(models) as saved, DeviceWaits(device) as waits:
                for i in steps: train_step(models, spec_b, dirs, opt, i)
            if waits.where is not None:
                print(f"train_step_device_waits_B{B}: {len(waits.where) / len(steps):g} a step" + ''.join(f"\n  {w}" for w in sorted(set(waits.where))))
            dt = (time.perf_counter() - t) / len(steps)
            total, parts = f_train(sh, b, B, m, rotation, k, recompute=args.recompute_layers)
            measured[B] = (pm.peak, total)
            line(f'train_saved_graph_B{B}', saved.largest, sum(f_saved(sh, b, B, rotation, k, recompute=args.recompute_layers).values()),
                 ' [the largest target pass: autograd saved tensors]')
            line(f'train_step_peak_B{B}', pm.peak, total,
                 f" [m = {m} scored tokens a target, rotation={rotation}; {dt:.1f} s a step; formula parts MiB: "
                 + ', '.join(f"{key} {mb(v)}" for key, v in parts.items()) + ']')

        E = spec.eval_batch_size
        rows_E = min(E, args.n_valid)
        with PeakMemory(device) as pm:
            t = time.perf_counter()
            iia = [evaluate_direction(models, spec, d, 'valid')[0] for d in dirs]
        m_E = int(MEAN_SCORED * rows_E)
        line('eval_peak', pm.peak, f_eval(sh, b, rows_E, m_E, rotation),
             f" [{len(dirs)} directions x {args.n_valid} rows, {rows_E} rows a pass, {time.perf_counter() - t:.1f} s]")
    del models, alignments, dirs, gens
    gc.collect()
    return measured


def extrapolate(args, rotation):
    "The formulas at 28 layers in bf16 with the paper's split sizes, per batch size and latents placement."
    sh, b, k = Shape(28), 2, 1536 // 2
    n_total = PAPER['n_train'] + PAPER['n_valid'] + PAPER['n_test']
    E = PAPER['eval_batch']
    print(f"extrapolation: 28 layers, bf16, n = {PAPER['n_train']}/{PAPER['n_valid']}/{PAPER['n_test']}, generation batch "
          f"{PAPER['gen_batch']}, evaluation batch {E}, rotation={rotation}; fits: total <= 90% of the card (CUDA context, allocator slack)")
    for B, where in itertools.product((16, 128), ('cached', 'cpu_or_batch')):
        models, cache = f_models(sh, b), f_latents(sh, b, n_total) if where == 'cached' else 0
        phases = dict(generate=f_generate(sh, b, PAPER['gen_batch']),
                      prepare=f_latents_build(sh, b, PAPER['n_train']) if where == 'cached' else 0,
                      train=f_train(sh, b, B, int(2 * B * MEAN_SCORED), rotation, k)[0],
                      eval=f_eval(sh, b, E, int(E * MEAN_SCORED), rotation))
        top = max(phases, key=phases.get)
        total = models + cache + phases[top]
        fits = lambda gb: 'yes' if total <= 0.9 * gb * 1e9 else 'no'
        print(f"extrapolated_L28_bf16_B{B}_latents_{where}: {total / GiB:.1f} GiB = models {models / GiB:.1f} + latents "
              f"{cache / GiB:.1f} + {top} {phases[top] / GiB:.1f} (phases GiB: "
              + ', '.join(f"{p} {v / GiB:.1f}" for p, v in phases.items()) + f"); fits 24 GB: {fits(24)}; fits 80 GB: {fits(80)}")
    for recompute in (False, True):
        total, parts = f_train(sh, b, 128, int(256 * MEAN_SCORED), rotation, k, recompute=recompute)
        print(f"extrapolated_L28_bf16_B128_train{'_recompute_layers' if recompute else ''}: {total / GiB:.1f} GiB (parts GiB: "
              + ', '.join(f"{p} {v / GiB:.1f}" for p, v in parts.items()) + ')')


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--layers', type=int, nargs='+', default=[1])
    p.add_argument('--batch', type=int, nargs='+', default=[128], help='interventions per direction in a training step')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--dtype', choices=('bf16', 'fp32'), default=None, help='default: bf16 on CUDA, fp32 on the CPU')
    p.add_argument('--rows', type=int, default=64, help='prompts generated per model (the interventions are drawn from them)')
    p.add_argument('--gen-batch', type=int, default=PAPER['gen_batch'])
    p.add_argument('--n-train', type=int, default=PAPER['n_train'])
    p.add_argument('--n-valid', type=int, default=PAPER['n_valid'])
    p.add_argument('--n-test', type=int, default=PAPER['n_test'])
    p.add_argument('--eval-batch', type=int, default=PAPER['eval_batch'])
    p.add_argument('--steps', type=int, default=1, help='training steps per batch size')
    p.add_argument('--warmup', type=int, default=1, help='unmeasured training steps before the first measured one')
    p.add_argument('--rotation', default='rows' if 'rotation' in supported_options() else None, help="'full' or 'rows'")
    p.add_argument('--latents', default=None, help="'cached', 'cpu' or 'batch' (default: the trainer's)")
    p.add_argument('--recompute-layers', action='store_true', help="recompute_layers=True: keep each decoder layer's input only")
    p.add_argument('--no-extrapolation', action='store_true')
    args = p.parse_args()
    device = torch.device(args.device)
    dtype_name = args.dtype or ('bf16' if device.type == 'cuda' else 'fp32')
    dtype, b = (torch.bfloat16, 2) if dtype_name == 'bf16' else (torch.float32, 4)
    for opt in ('rotation', 'latents'):
        if getattr(args, opt) and opt not in supported_options():
            print(f"note: this mas_nb has no {opt!r} option; the default path runs")
    rotation = args.rotation if 'rotation' in supported_options() and args.rotation else 'full'
    print(f"device: {device}")
    print(f"dtype: {dtype_name}")
    print(f"torch_threads: {torch.get_num_threads()}")
    print(f"load_avg_start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"memory: {PeakMemory.how(device)}")
    print(f"run: rows {args.rows}, n {args.n_train}/{args.n_valid}/{args.n_test}, batch {args.batch}, eval batch {args.eval_batch}, "
          f"rotation={rotation}, latents={args.latents or 'default'}, recompute_layers={args.recompute_layers}, {args.steps} step(s) a batch size")
    train = {L: run(Shape(L), args, device, dtype, b) for L in args.layers}
    if len(args.layers) > 1:  # what one more decoder layer adds to a training step: measured against the formula's graph term
        lo, hi = min(args.layers), max(args.layers)
        for B in args.batch:
            per_layer = [(train[hi][B][i] - train[lo][B][i]) / (hi - lo) for i in (0, 1)]
            line(f'train_step_per_layer_B{B}', *per_layer, f" [layers {lo} -> {hi}: the peak's growth per decoder layer]")
    if not args.no_extrapolation: extrapolate(args, rotation)
    print(f"load_avg_end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == '__main__':
    main()
