"Exercise checkers of chapter 66: the reference answer passes, the mistake each exercise is about is rejected."
import ast
import pytest
from course_lib.llm import tool_use as T
from course_lib.llm.chat_sft import render_chat
from course_lib.llm.byte_tokenizer import train_byte_bpe
from exercise_helpers import passes, fails


@pytest.fixture(scope='module')
def tok():
    return train_byte_bpe('What is 12 * 34? calculator: 12 * 34 = 408. Order KL-10025 is delivered. ' * 10, 300)


def test_strict_mode_raises(monkeypatch):
    monkeypatch.setenv('COURSE_STRICT_CHECKS', '1')
    with pytest.raises(AssertionError):
        T.check_parse_call('Exercise 2', lambda text, names: ('calculator', text))


def _walker(allow_names=False, ops=(ast.Add, ast.Mult)):
    def fn(expr):
        def walk(node):
            if isinstance(node, ast.Constant) and type(node.value) is int: return node.value
            if allow_names and isinstance(node, ast.Name): return 0
            if isinstance(node, ast.BinOp) and isinstance(node.op, ops):
                a, b = walk(node.left), walk(node.right)
                return {ast.Add: a + b, ast.Mult: a * b, ast.Sub: a - b}[type(node.op)]
            raise ValueError(type(node).__name__)
        try: tree = ast.parse(expr, mode='eval')
        except SyntaxError: raise ValueError(expr) from None
        return walk(tree.body)
    return fn


def test_ex1_safe_add_mul(capsys):
    passes(capsys, T.check_safe_add_mul('Exercise 1', _walker()))

    def eval_wrapped(expr):                     # eval with no builtins, errors turned into ValueError: still eval
        try: return eval(expr, {'__builtins__': {}})
        except Exception as err: raise ValueError(str(err)) from None
    fails(capsys, T.check_safe_add_mul('Exercise 1', eval_wrapped))
    fails(capsys, T.check_safe_add_mul('Exercise 1', _walker(allow_names=True)))            # names accepted
    fails(capsys, T.check_safe_add_mul('Exercise 1', _walker(ops=(ast.Add, ast.Mult, ast.Sub))))  # '-' accepted
    fails(capsys, T.check_safe_add_mul('Exercise 1', lambda e: T.calculator(e)))             # returns str, allows '-'
    fails(capsys, T.check_safe_add_mul('Exercise 1', lambda e: 1 / 0))


def test_ex1_refusal_must_be_a_value_error(capsys):
    def name_error(expr):                       # refuses names, but with NameError (what eval would raise)
        if any(c.isalpha() or c in "'_[" for c in expr): raise NameError(expr)
        return _walker()(expr)
    fails(capsys, T.check_safe_add_mul('Exercise 1', name_error))


def test_ex2_parse_call(capsys):
    def good(text, names):
        name, colon, arg = text.partition(':')
        name, arg = name.strip(), arg.strip()
        if not colon or name not in names or not arg: raise ValueError(text)
        return name, arg
    passes(capsys, T.check_parse_call('Exercise 2', good))
    passes(capsys, T.check_parse_call('Exercise 2', lambda text, names: list(good(text, names))))

    def no_colon_needed(text, names):           # falls back to the first space when the colon is missing
        if ':' not in text: name, _, arg = text.strip().partition(' '); return name, arg.strip()
        return good(text, names)
    fails(capsys, T.check_parse_call('Exercise 2', no_colon_needed))

    def any_tool(text, names):                   # never checks the name
        name, colon, arg = text.partition(':')
        if not colon or not arg.strip(): raise ValueError(text)
        return name.strip(), arg.strip()
    fails(capsys, T.check_parse_call('Exercise 2', any_tool))

    def last_colon(text, names):
        name, colon, arg = text.rpartition(':')
        if not colon or name.strip() not in names or not arg.strip(): raise ValueError(text)
        return name.strip(), arg.strip()
    fails(capsys, T.check_parse_call('Exercise 2', last_colon))
    fails(capsys, T.check_parse_call('Exercise 2', lambda text, names: good(text, names) if text.strip() != 'calculator:' else ('calculator', '')))
    fails(capsys, T.check_parse_call('Exercise 2', lambda text, names: text.split(':')))
    fails(capsys, T.check_parse_call('Exercise 2', lambda text, names: 1 / 0))


def test_ex3_tool_mask(capsys, tok):
    def good(ids, sp):
        mask, on = [], False
        for t in ids:
            mask.append(int(on))
            if t == sp['<|assistant|>']: on = True
            elif t == sp['<|end|>']: on = False
        return mask
    passes(capsys, T.check_tool_mask('Exercise 3', good, tok))

    def learns_results(ids, sp):                 # everything after the first <|assistant|>, tool results included
        first = ids.index(sp['<|assistant|>'])
        return [0] * (first + 1) + [1] * (len(ids) - first - 1)
    fails(capsys, T.check_tool_mask('Exercise 3', learns_results, tok))

    def role_based_results(ids, sp):             # treats <|tool_result|> like <|assistant|>
        mask, on = [], False
        for t in ids:
            mask.append(int(on))
            if t in (sp['<|assistant|>'], sp['<|tool_result|>']): on = True
            elif t == sp['<|end|>']: on = False
        return mask
    fails(capsys, T.check_tool_mask('Exercise 3', role_based_results, tok))

    def no_end(ids, sp):                          # forgets the <|end|>: the model never learns to stop
        return [m if t != sp['<|end|>'] else 0 for t, m in zip(ids, good(ids, sp))]
    fails(capsys, T.check_tool_mask('Exercise 3', no_end, tok))

    def no_call_token(ids, sp):                   # does not learn the decision to call
        return [0 if t == sp['<|tool_call|>'] else m for t, m in zip(ids, good(ids, sp))]
    fails(capsys, T.check_tool_mask('Exercise 3', no_call_token, tok))
    fails(capsys, T.check_tool_mask('Exercise 3', lambda ids, sp: 1 / 0, tok))
    conv = [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello.'}]
    assert good(*render_chat(tok, conv)[:1], tok.special_ids) == render_chat(tok, conv)[1]
