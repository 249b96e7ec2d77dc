"""Independent, token-by-token reference causal models used to check the vectorised library code.

Deliberately written as plain Python loops over token strings, sharing no code with mas_nb."""

RESPONSES = {'multiobject': lambda n: n, 'sameobject': lambda n: n,
             'modulo': lambda n: n % 4, 'rounding': lambda n: 3 * round(n / 3)}
DEMOS = {'sameobject': ('C',)}
RESP = {'sameobject': 'C'}


def demo_tokens(task): return DEMOS.get(task, ('Da', 'Db', 'Dc'))
def resp_token(task): return RESP.get(task, 'R')


def token_value(task, tok, phase):
    if phase == 0 and tok in demo_tokens(task): return 1
    if phase == 1 and tok == resp_token(task): return -1
    return 0


def walk_counting(task, toks, overrides=None):
    "[(count, phase, last_value)] after every token; `overrides` maps position -> token value to use instead."
    f, count, phase, out = RESPONSES[task], 0, 0, []
    for i, tok in enumerate(toks):
        if tok == 'T': phase, count = 1, f(count)
        v = token_value(task, tok, phase) if not overrides or i not in overrides else overrides[i]
        count += v
        out.append((count, phase, v))
    return out


def walk_arithmetic(toks):
    "[(cumu_val, rem_ops)] after every token of `B k v op a = r , ... E`."
    out, cumu, rem = [], 0, 0
    for i, tok in enumerate(toks):
        if i == 1: rem = int(tok)
        elif i == 2: cumu = int(tok)
        elif i > 2 and toks[i - 1] == '=': cumu, rem = int(tok), rem - 1
        out.append((cumu, rem))
    return out


def check_counting_continuation(task, cont, count, phase):
    "Assert `cont` (tokens after the site, pads removed) is what the causal model implies from (count, phase)."
    f, i = RESPONSES[task], 0
    if phase == 0:
        while cont[i] in demo_tokens(task): i += 1
        extra = i
        assert cont[i] == 'T', cont
        assert 1 <= count + extra <= 20, (count, extra)
        owed, i = f(count + extra), i + 1
    else:
        owed = count
    assert cont[i:] == [resp_token(task)] * owed + ['E'], (cont, count, phase)


def check_arithmetic_continuation(cont, cumu, rem):
    "Assert `cont` performs exactly `rem` valid operations starting from `cumu`."
    assert len(cont) == 5 * rem, (cont, rem)
    for j in range(rem):
        op, a, eq, r, sep = cont[5 * j:5 * j + 5]
        a, r = int(a), int(r)
        assert op == ('+' if cumu == 0 else '-' if cumu == 20 else op) and op in '+-'
        assert eq == '=' and 1 <= a and r == (cumu + a if op == '+' else cumu - a) and 0 <= r <= 20
        assert sep == ('E' if j == rem - 1 else ',')
        cumu = r


def deterministic_reference(task, toks, site=-1, site_phase=None):
    "Which tokens of `toks` after `site` are determined (all of them from the start when site == -1)."
    if task == 'arithmetic':
        return [j > site and (t in ('=', ',', 'E') or (j > 0 and toks[j - 1] == '=')) for j, t in enumerate(toks)]
    out, after_t = [], site_phase == 1
    for j, t in enumerate(toks):
        if j > site and t == 'T': after_t = True
        out.append(j > site and after_t and t != 'T' and t != 'P')
    return out
