"""Lesson 2, backdoors: the notebook's self-checking exercises.

See Also: notebooks/02_backdoors.ipynb
"""
from __future__ import annotations

import numpy as np

from .exercises import exercise, one_of


@exercise("l2_cheap_backdoor",
          hint="The poison rate is capped at 0.03; the trigger is yours to design. A bigger, "
               "brighter patch is easier to learn. Answer with the params of "
               "lk.run('backdoor', ...), e.g. {'rate': 0.03, 'size': 2}.",
          solution="{'rate': 0.03} already gives about 0.96 with the default 2x2 patch (seed 0); "
                   "{'rate': 0.02, 'size': 3} is cheaper still.")
def _l2_cheap_backdoor(answer):
    from ..experiment import run

    if not isinstance(answer, dict) or "rate" not in answer:
        return False, "answer with a dict holding at least 'rate', e.g. {'rate': 0.03, 'size': 2}"
    params = {k: v for k, v in answer.items() if k != "rate"}
    if float(answer["rate"]) > 0.03:
        return False, f"rate {answer['rate']} is above the budget of 0.03"
    r = run("backdoor", seed=0, rate=float(answer["rate"]), params=params)
    msg = f"attack success {r.attack_success:.2f}, clean accuracy {r.clean_accuracy:.2f}"
    return r.attack_success >= 0.9, msg + " (goal: attack success >= 0.90)"


@exercise("l2_rows_to_drop",
          hint="You hold the poisoned training set and the model trained on it. Embed the "
               "rows (lk.models.embed), run a detector, and answer with the indices it flags "
               "(Detection.flagged_idx). At most 100 rows.",
          solution="feats = lk.models.embed(victim, poisoned.X); "
                   "lk.defences.activation_clustering(feats, poisoned.y, rng=0).flagged_idx "
                   "(the poisoned set of lk.attacks.add_backdoor(lk.data.digits(seed=0).train, rng=0), "
                   "victim = lk.models.train(poisoned, seed=0)).")
def _l2_rows_to_drop(answer):
    from ..attacks.backdoor import add_backdoor
    from ..data import digits
    from ..metrics import attack_success_rate, clean_accuracy
    from ..models import train

    idx = np.unique(np.asarray(answer, dtype=np.int64).ravel())
    split = digits(seed=0)
    poisoned = add_backdoor(split.train, rng=0)
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
          solution="'activation_clustering': its 'smaller cluster' rule needs the poisons to be the "
                   "smaller group; at half the class neither cluster is small.")
def _l2_which_breaks(answer):
    return one_of(answer, ("activation_clustering", "ac"),
                   right="yes: with poisons as half the class, the 'smaller cluster' is no longer the poison.",
                   wrong="look at the recall-vs-rate curve again: which one drops to 0 at 0.10?")
