"""Old module names (release 0.1's flat layout) keep working for one release, with a DeprecationWarning.

`import course_lib.learner` returns the module `course_lib.train.learner` itself (not a copy), so objects,
isinstance checks and monkeypatching behave the same under either name. Remove in release 0.3."""
import importlib, importlib.abc, importlib.util, sys, warnings

ALIASES = {
    'learner': 'train.learner', 'progress': 'train.learner', 'checkpoint': 'train.checkpoint',
    'distributed': 'train.distributed', 'perf': 'train.performance', 'exercises': 'teach.exercises',
    'teaching': 'teach.notebooks', 'course_site': 'teach.site',
    'timeline': 'concepts.large_models', 'costs': 'concepts.compute_cost', 'decide': 'concepts.build_or_buy',
    'product': 'concepts.model_to_product', 'losses': 'maths.losses', 'activations': 'maths.activations',
    'optimizers': 'maths.optimizers', 'backprop': 'maths.backprop', 'regularization': 'maths.regularization',
    'cnn_rnn': 'algorithms.cnn_rnn', 'attention': 'algorithms.attention', 'tokenization': 'algorithms.tokenization',
    'gpt': 'algorithms.pretraining_gpt', 'finetune': 'algorithms.finetuning', 'continual': 'algorithms.continual',
    'digits': 'projects.digits_mlp', 'boundary': 'projects.four_points', 'risk': 'projects.risk_scoring',
    'textclf': 'projects.lstm_classifier', 'decoding': 'projects.text_generation', 'retrieval': 'projects.semantic_search',
    'qa': 'projects.qa_assistant', 'recsys': 'projects.recommender', 'summarize': 'applications.language',
    'vision': 'applications.vision', 'forecast': 'applications.forecasting', 'fairness': 'applications.risk_fairness',
    'serving': 'applications.deployment', 'trust': 'applications.trust',
}

class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target): self.target = target
    def create_module(self, spec):
        return importlib.import_module(self.target)
    def exec_module(self, module): pass

class _AliasFinder(importlib.abc.MetaPathFinder):
    "Resolve `course_lib.<old name>` to the module's new home."
    def find_spec(self, fullname, path=None, target=None):
        head, _, old = fullname.partition('.')
        if head != 'course_lib' or old not in ALIASES: return None
        new = f'course_lib.{ALIASES[old]}'
        warnings.warn(f"course_lib.{old} moved to {new}; the old name works until release 0.3. "
                      f"Fix: import from {new}.", DeprecationWarning, stacklevel=3)
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))

def install_aliases():
    if not any(isinstance(f, _AliasFinder) for f in sys.meta_path): sys.meta_path.append(_AliasFinder())
