"""Lesson 2, backdoors: the notebook's self-checking exercises.

See Also: notebooks/02_backdoors.ipynb
"""
from __future__ import annotations

import numpy as np

from .exercises import exercise, one_of, real_number


def _poisoned():
    """The backdoored training set of :func:`_l2_rows_to_drop` (digits seed 0, default backdoor)."""
    from ..attacks.backdoor import add_backdoor
    from ..data import digits

    return add_backdoor(digits(seed=0).train, rng=0)


def _rows_flagged_by_activation_clustering():
    """The recorded answer of ``l2_rows_to_drop``: the rows activation clustering flags."""
    from ..defences.activation_clustering import activation_clustering
    from ..models import embed, train

    poisoned = _poisoned()
    return activation_clustering(embed(train(poisoned, seed=0), poisoned.X), poisoned.y, rng=0).flagged_idx


def _clean_rows(n: int):
    """A wrong answer of ``l2_rows_to_drop``: ``n`` rows the attacker did not touch."""
    poisoned = _poisoned()
    return np.setdiff1d(np.arange(len(poisoned)), poisoned.poison_idx)[:n]


@exercise("l2_cheap_backdoor",
          hint="The poison rate is capped at 0.03; the trigger is yours to design. A bigger, "
               "brighter patch is easier to learn. Answer with the params of "
               "lk.run('backdoor', ...), e.g. {'rate': 0.03, 'size': 2}.",
          hints=("Start at the budget, {'rate': 0.03}, with the default 2x2 patch: the rate sweep "
                 "above shows attack success against the rate. If it falls short, try 'size': 3.",),
          answer_type="a dict of lk.run('backdoor') parameters with 'rate' at most 0.03, e.g. {'rate': 0.03, 'size': 2}",
          solution="{'rate': 0.03} already gives about 0.96 with the default 2x2 patch (seed 0); "
                   "{'rate': 0.02, 'size': 3} is cheaper still.",
          answer={"rate": 0.03}, wrong={"rate": 0.005})
def _l2_cheap_backdoor(answer):
    from ..experiment import run

    if not isinstance(answer, dict) or "rate" not in answer:
        return False, "answer with a dict holding at least 'rate', e.g. {'rate': 0.03, 'size': 2}"
    params = {k: v for k, v in answer.items() if k != "rate"}
    rate, problem = real_number(answer["rate"], what="'rate' as a number, at most 0.03")
    if problem:
        return False, problem
    if rate > 0.03:
        return False, f"rate {rate:g} is above the budget of 0.03"
    if rate <= 0:
        return False, f"rate must be above 0, got {rate:g}"
    try:
        r = run("backdoor", seed=0, rate=rate, params=params)
    except (TypeError, ValueError) as err:
        return False, f"lk.run('backdoor') refused these parameters: {err}"
    msg = f"attack success {r.attack_success:.2f}, clean accuracy {r.clean_accuracy:.2f}"
    return r.attack_success >= 0.9, msg + " (goal: attack success >= 0.90)"


@exercise("l2_rows_to_drop",
          hint="You hold the poisoned training set and the model trained on it. Embed the "
               "rows (lk.models.embed), run a detector, and answer with the indices it flags "
               "(Detection.flagged_idx). At most 100 rows.",
          hints=("Both detectors above returned a Detection: ac.flagged_idx (activation "
                 "clustering) and ss.flagged_idx (spectral signatures). Check that your answer "
                 "holds at most 100 rows.",),
          answer_type="row indices (a list or array of whole numbers, at most 100) or a boolean mask over the rows",
          solution="feats = lk.models.embed(victim, poisoned.X); "
                   "lk.defences.activation_clustering(feats, poisoned.y, rng=0).flagged_idx "
                   "(the poisoned set of lk.attacks.add_backdoor(lk.data.digits(seed=0).train, rng=0), "
                   "victim = lk.models.train(poisoned, seed=0)).",
          answer=_rows_flagged_by_activation_clustering,
          wrong=lambda: _clean_rows(100))
def _l2_rows_to_drop(answer):
    from ..data import digits
    from ..metrics import attack_success_rate, clean_accuracy
    from ..models import train

    split = digits(seed=0)
    if isinstance(answer, (str, bytes, dict, int, float)):
        return False, f"expected row indices (a list or array of whole numbers) or a boolean mask, got {answer!r:.40}"
    try:
        answer = np.asarray(answer)
    except ValueError:                       # a ragged list
        return False, "expected a flat list of row indices or a boolean mask"
    poisoned = _poisoned()
    if answer.dtype == bool:                 # a mask such as Detection.flagged: its rows
        if answer.shape != (len(poisoned),):
            return False, f"a boolean mask must have {len(poisoned)} entries, got shape {answer.shape}"
        answer = np.flatnonzero(answer)
    if answer.size and not np.issubdtype(answer.dtype, np.integer):
        return False, "answer with row indices (Detection.flagged_idx) or a boolean mask"
    idx = np.unique(answer.astype(np.int64).ravel())
    if idx.size > 100 or (idx.size and (idx.min() < 0 or idx.max() >= len(poisoned))):
        return False, f"give at most 100 row indices in [0, {len(poisoned)}); got {idx.size}"
    keep = np.setdiff1d(np.arange(len(poisoned)), idx)
    model = train(poisoned.as_dataset().subset(keep), seed=0)
    asr, acc = attack_success_rate(model, poisoned, split.test), clean_accuracy(model, split.test)
    caught = np.isin(poisoned.poison_idx, idx).sum()
    msg = (f"you dropped {idx.size} rows ({caught} of {poisoned.n_poison} poisons); after retraining "
           f"attack success {asr:.2f}, clean accuracy {acc:.2f}")
    return asr <= 0.10 and acc >= 0.94, msg + " (goal: attack success <= 0.10, accuracy >= 0.94)"


@exercise("l2_which_breaks_at_high_rate",
          hint="At rate 0.10 the poisons are half of class 0. Which rule assumes they are a "
               "minority of their class?",
          hints=("Read the printed line 'rate 0.10: ...' in the failure modes: which detector's "
                 "recall is 0.00 there?",),
          answer_type='a defence\'s name as a string, e.g. "spectral_signature"',
          solution="'activation_clustering': its 'smaller cluster' rule needs the poisons to be the "
                   "smaller group; at half the class neither cluster is small.",
          answer="activation_clustering", wrong="spectral_signature")
def _l2_which_breaks(answer):
    return one_of(answer, ("activation_clustering", "ac"),
                   right="yes: with poisons as half the class, the 'smaller cluster' is no longer the poison.",
                   wrong="look at the recall-vs-rate curve again: which one drops to 0 at 0.10?")
