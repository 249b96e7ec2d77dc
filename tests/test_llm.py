"The language-model path end to end on tiny random Qwen2 models: hooks, interventions, fine-tuning, generation, MAS, study."
import csv, json
import numpy as np
import pytest
import torch

from mas_nb.llm import (HFCausalLM, Generations, TextData, TokenInterventions, balance, finetune, generate, label_rows, llm_mas,
                        load_lm, load_text_file, load_toxicity, make_prompts, split_data, tiny_qwen2, tiny_tokenizer, toxicity_study)

NICE = ["thank you for the kind help .", "i really appreciate your time .", "have a lovely day my friend ."]
RUDE = ["you are a stupid idiot .", "your idea is garbage .", "shut up and go away loser ."]


def corpus(seed=0, n=24):
    rng = np.random.default_rng(seed)
    return [' '.join(rng.choice(p, 12)) for p in (NICE, RUDE) for _ in range(n)], [0] * n + [1] * n


@pytest.fixture(scope='module')
def tok():
    return tiny_tokenizer(corpus()[0])


@pytest.fixture(scope='module')
def lm(tok):
    return HFCausalLM(tiny_qwen2(tok, hidden=32, layers=2, heads=4, seed=0), tok, 'lm')


def random_gens(tok, name, n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Generations(torch.randint(4, len(tok), (n, 96), generator=g), 32, name)


@pytest.mark.parametrize('site', ['embedding', 'layer0', 'layer1'])
@pytest.mark.parametrize('stepwise', [False, True])
def test_patching_the_original_activation_reproduces_the_logits_exactly(lm, tok, site, stepwise):
    ids = torch.randint(4, len(tok), (4, 12), generator=torch.Generator().manual_seed(1))
    pos = torch.tensor([0, 3, 7, 11])
    with torch.no_grad():
        want = lm.lm(ids).logits
        h = lm.latents(ids, site)
        new = h if stepwise else h[torch.arange(4), pos]
        got = lm.patched_logits(ids, site, pos, new, stepwise=stepwise, prefix=True)
        assert torch.equal(got, want)
        moved = lm.patched_logits(ids, site, pos, new + 1.0, stepwise=stepwise, prefix=True)
    assert not torch.equal(moved[torch.arange(4), pos], want[torch.arange(4), pos])  # the patch does act
    if not stepwise: assert torch.equal(moved[0, :0], want[0, :0]) and torch.equal(moved[3, :11], want[3, :11])  # nothing before pos


def test_scored_positions_only_and_gradients_reach_the_patch(lm, tok):
    ids = torch.randint(4, len(tok), (2, 10), generator=torch.Generator().manual_seed(2))
    pos = torch.tensor([2, 5])
    new = lm.latents(ids, 'embedding').detach().requires_grad_(True)
    scored = torch.zeros(2, 10, dtype=torch.bool); scored[0, 4] = scored[1, 9] = True
    out = lm.patched_logits(ids, 'embedding', pos, new, stepwise=True, scored=scored)
    assert out[0, 3].abs().sum() == 0 and out[0, 4].abs().sum() > 0
    out[0, 4].sum().backward()
    assert new.grad[0, :3].abs().sum() > 0 and new.grad[1].abs().sum() == 0


def test_token_interventions_place_the_index_after_the_prompt():
    src = Generations(torch.arange(96).repeat(3, 1), 32, 's')
    trg = Generations(500 + torch.arange(96).repeat(4, 1), 32, 't')
    iv = TokenInterventions([src, trg], index_range=(10, 54))(0, 1, 500, seed=3)
    p = iv.trg_pos
    assert int(p.min()) == 42 and int(p.max()) == 86 and torch.equal(iv.src_pos, p) and iv.stepwise
    col = torch.arange(96)[None]
    assert torch.equal(iv.cf_ids, torch.where(col > p[:, None], col.expand(500, -1), 500 + col))
    assert torch.equal(iv.label_mask, col > p[:, None])
    with pytest.raises(ValueError, match='same prompt and total lengths'):
        TokenInterventions([src, Generations(torch.zeros(2, 90, dtype=torch.long), 32, 'x')])


def test_paper_labelling_and_balancing():
    jig = dict(comment_text=['a', 'b', 'c'], toxic=[0, 1, -1], severe_toxic=[0, 0, -1], obscene=[0, 0, -1],
               threat=[0, 0, -1], insult=[0, 0, -1], identity_hate=[0, 0, 1])
    assert label_rows('jigsaw', jig).labels.tolist() == [0, 1]
    hh = label_rows('hh', dict(chosen=['c1', 'c2'], rejected=['r1', 'r2']))
    assert dict(zip(hh.texts, hh.labels.tolist())) == dict(c1=0, c2=0, r1=1, r2=1)
    tc = label_rows('toxicchat', dict(user_input=list('abcd'), toxicity=[0, 1, 0, 1], jailbreaking=[0, 0, 1, 1]))
    assert tc.labels.tolist() == [0, 1, 1, 1]
    b = balance(tc, seed=0)
    assert b.counts() == dict(toxic=1, nontoxic=1) and 'a' in b.texts


def test_pipeline_end_to_end(tok, tmp_path):
    texts, labels = corpus(seed=1)
    path = tmp_path / 'data.jsonl'
    path.write_text('\n'.join(json.dumps(dict(body=t, tox='toxic' if l else 'nontoxic')) for t, l in zip(texts, labels)))
    data = balance(load_text_file(path, 'body', 'tox'), seed=0)
    train, test = split_data(data, test_frac=0.25, seed=0)
    assert not set(train.texts) & set(test.texts)
    base = tiny_qwen2(tok, hidden=32, layers=2, heads=4, seed=0)
    models = {}
    for i, (name, toxic) in enumerate([('tox0', True), ('tox1', True), ('non0', False)]):
        models[name] = tiny_qwen2(tok, hidden=32, layers=2, heads=4, seed=0)
        models[name].load_state_dict(base.state_dict())
        out = finetune(models[name], tok, train.of_class(toxic), batch_size=8, max_steps=6, lr=5e-3, seed=i, progress=False, use_cpu=True)
        assert np.isfinite(out.training_loss)
    emb = lambda m: m.get_input_embeddings().weight
    assert not torch.equal(emb(models['tox0']), emb(base)) and not torch.equal(emb(models['tox0']), emb(models['non0']))
    prompts, kept = make_prompts(tok, test.texts, prompt_len=32)
    gens = {n: generate(m, prompts, new_tokens=64, batch_size=4, name=n, labels=test.labels[kept], progress=False) for n, m in models.items()}
    g = gens['tox0']
    assert g.ids.shape == (len(prompts), 96) and torch.equal(g.ids[:, :32], prompts)
    with torch.no_grad():  # greedy: every generated token is the argmax of the teacher-forced logits
        assert torch.equal(models['tox0'](g.ids).logits[:, 31:-1].argmax(-1), g.ids[:, 32:])
    g.save(tmp_path / 'g.pt')
    assert torch.equal(Generations.load(tmp_path / 'g.pt').ids, g.ids)
    study = toxicity_study({n: (models[n], tok) for n in ('tox0', 'tox1')}, {'non0': (models['non0'], tok)}, gens,
                           n_train=64, n_valid=16, n_test=32, batch_size=8, max_steps=3, eval_every=3, progress=False)
    assert [r['group'] for r in study.records] == ['toxic-toxic'] * 2 + ['toxic-nontoxic'] * 4
    assert {r['direction'] for r in study.records} == {'tox0->tox1', 'tox1->tox0', 'tox0->non0', 'non0->tox0', 'tox1->non0', 'non0->tox1'}
    assert all(0 <= r['token_acc'] <= 1 for r in study.records)
    tn = [r['token_acc'] for r in study.records if r['group'] == 'toxic-nontoxic']
    assert study.summary['toxic-nontoxic']['n'] == 4 and study.summary['toxic-nontoxic']['mean'] == pytest.approx(np.mean(tn))
    assert study.summary['toxic-nontoxic']['se'] == pytest.approx(np.std(tn, ddof=1) / 2)
    study.save_json(tmp_path / 'study.json')
    assert json.loads((tmp_path / 'study.json').read_text())['summary'].keys() == study.summary.keys()
    # a full-width swap within a model hands the target the source's own inputs: its greedy tokens, exactly
    full = llm_mas([(models['tox0'], tok)], [g], k=32, n_train=32, n_valid=16, n_test=64, max_steps=1, progress=False)
    assert full.token_acc == {'tox0->tox0': 1.0}


def test_checkpoint_resumes_only_the_same_generations(lm, tok, tmp_path):
    gens = [random_gens(tok, 'a', seed=0), random_gens(tok, 'b', seed=1)]
    other = tiny_qwen2(tok, hidden=32, layers=2, heads=4, seed=1)
    kw = dict(n_train=32, n_valid=16, n_test=16, batch_size=4, eval_every=2, progress=False)
    ck = tmp_path / 'ck.pt'
    straight = llm_mas([lm, (other, tok)], gens, max_steps=4, **kw)
    llm_mas([lm, (other, tok)], gens, max_steps=2, checkpoint=ck, **kw)
    resumed = llm_mas([lm, (other, tok)], gens, max_steps=4, checkpoint=ck, **kw)
    assert resumed.token_acc == straight.token_acc and resumed.history == straight.history
    assert json.loads(json.dumps(resumed.config))['interventions']['index_range'] == [10, 54]
    with pytest.raises(ValueError, match='different run'):
        llm_mas([lm, (other, tok)], gens, max_steps=4, checkpoint=ck, index_range=(12, 50), **kw)


def test_recomputed_layers_give_the_same_run_and_keep_less(tok):
    "recompute_layers=True keeps only each later decoder layer's input for the backward: the same run, a smaller saved graph."
    lms = [HFCausalLM(tiny_qwen2(tok, hidden=32, layers=4, heads=4, seed=s), tok, f"m{s}") for s in (0, 1)]
    gens = [random_gens(tok, f"m{s}", seed=s) for s in (0, 1)]
    kw = dict(site='layer1', n_train=32, n_valid=16, n_test=16, batch_size=4, max_steps=2, eval_every=1, progress=False)
    def run(**extra):
        saved = []
        def pack(t): saved.append(t.numel() * t.element_size()); return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            return llm_mas(lms, gens, **kw, **extra), sum(saved)
    (plain, kept), (recomputed, kept_less) = run(), run(recompute_layers=True)
    assert recomputed.history == plain.history and recomputed.token_acc == plain.token_acc
    assert kept_less < 0.8 * kept
    assert [len(m.downstream_layers(s)) for m, s in ((lms[0], 'embedding'), (lms[0], 'layer1'), (lms[0], 'model.layers.1.mlp'))] == [4, 2, 2]
    with pytest.raises(ValueError, match='recompute_layers: .* no layers after site'):
        llm_mas(lms, gens, **{**kw, 'site': 'layer3'}, recompute_layers=True)


def test_bf16_model_keeps_float32_alignments(tok):
    m = HFCausalLM(tiny_qwen2(tok, hidden=32, layers=2, heads=4, seed=0).to(torch.bfloat16), tok, 'bf16')
    res = llm_mas([m], [random_gens(tok, 'bf16')], site='layer0', n_train=16, n_valid=8, n_test=8, batch_size=4, max_steps=2, progress=False)
    assert all(p.dtype == torch.float32 for p in res.alignments.parameters())
    assert res.k == 16 and 0 <= res.token_acc['bf16->bf16'] <= 1


def test_bad_input(lm, tok, tmp_path):
    gens = [random_gens(tok, 'a')]
    with pytest.raises(ValueError, match="unknown site 'layer5'"): llm_mas([lm], gens, site='layer5', progress=False)
    with pytest.raises(ValueError, match="unknown site 'model.nope'"): lm.latents(torch.zeros(1, 3, dtype=torch.long), 'model.nope')
    other_tok = tiny_tokenizer(['entirely other words here'])
    with pytest.raises(ValueError, match='different tokenizers'):
        llm_mas([lm, (tiny_qwen2(other_tok), other_tok)], gens * 2, progress=False)
    with pytest.raises(ValueError, match='empty'): balance(TextData([], []))
    with pytest.raises(ValueError, match='empty'): finetune(lm.lm, tok, [])
    with pytest.raises(ValueError, match='empty'): TokenInterventions([Generations(torch.zeros(0, 96, dtype=torch.long), 32, 'e')])
    (tmp_path / 'empty.csv').write_text('text,label\n')
    with pytest.raises(ValueError, match='empty'): load_text_file(tmp_path / 'empty.csv')
    with open(tmp_path / 'nolabel.csv', 'w', newline='') as f: csv.writer(f).writerows([['text', 'kind'], ['hi', '1']])
    with pytest.raises(ValueError, match=r"no column \['label'\]"): load_text_file(tmp_path / 'nolabel.csv')
    with pytest.raises(ValueError, match='at least 32 tokens'): make_prompts(tok, ['too short'], prompt_len=32)
    with pytest.raises(RuntimeError, match='pass path='): load_toxicity('toxicchat', 'train', path=tmp_path / 'missing')
    with pytest.raises(ValueError, match='unknown source'): load_toxicity('reddit')
    with pytest.raises(RuntimeError, match='pass its path'): load_lm(str(tmp_path / 'no_model'))
    with pytest.raises(ValueError, match='token ids must lie'): lm.latents(torch.tensor([[len(tok) + 5]]), 'embedding')


def test_generations_run_the_full_length_when_the_model_favours_eos(tok):
    "EOS is just another token: a model whose head always picks EOS still continues for every new token."
    model = tiny_qwen2(tok, hidden=32, layers=1, heads=2, seed=0)
    favour = torch.nn.functional.one_hot(torch.tensor(tok.eos_token_id), len(tok)) * 100.
    model.lm_head.register_forward_hook(lambda mod, inputs, out: out + favour)
    prompts = torch.randint(4, len(tok), (5, 32), generator=torch.Generator().manual_seed(0))
    g = generate(model, prompts, new_tokens=64, batch_size=2, progress=False)
    assert g.ids.shape == (5, 96) and (g.ids[:, 32:] == tok.eos_token_id).all()
    with torch.no_grad():
        assert torch.equal(model(g.ids).logits[:, 31:-1].argmax(-1), g.ids[:, 32:])


def test_each_source_is_balanced_on_its_own(monkeypatch):
    "A source that is mostly nontoxic and one that is mostly toxic: after balancing, the label says nothing about the source."
    import mas_nb.llm as llm
    texts = lambda src, split, n: [f"{src} {split} {i}" for i in range(n)]
    data = {('a', 'train'): (texts('a', 'train', 40), [1] * 5 + [0] * 35), ('b', 'train'): (texts('b', 'train', 40), [1] * 30 + [0] * 10),
            ('a', 'test'): (texts('a', 'test', 20) + ['b train 0'], [1] * 4 + [0] * 16 + [1]), ('b', 'test'): (texts('b', 'test', 20), [1] * 15 + [0] * 5)}
    monkeypatch.setattr(llm, 'load_toxicity', lambda src, split, path=None: TextData(*data[src, split]))
    out = llm.toxicity_data(('a', 'b'), seed=0)
    for split in ('train', 'test'):
        by_source = {s: [l for t, l in zip(out[split].texts, out[split].labels) if t.startswith(s)] for s in 'ab'}
        for s, labels in by_source.items(): assert sum(labels) * 2 == len(labels) > 0, (split, s)
    assert [len(out['train'].texts), len(out['test'].texts)] == [10 + 20, 8 + 10]
    assert 'b train 0' not in out['test'].texts   # test texts never occur in any training split


def test_a_saved_model_loads_back_with_its_own_tokenizer(tok, tmp_path):
    "load_lm keeps a saved word-level tokenizer: transformers 5 would rebuild it as Qwen2's BPE, with other token ids."
    model = tiny_qwen2(tok, hidden=16, layers=1, heads=2, seed=0)
    model.save_pretrained(tmp_path); tok.save_pretrained(tmp_path)
    loaded, tok2 = load_lm(str(tmp_path))
    text = ' '.join(NICE[:2] + RUDE[:1])
    assert tok2(text)['input_ids'] == tok(text)['input_ids']
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
