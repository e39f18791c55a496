"""How the victim learns, and what the attacker is given: the four threat models of the lab.

Every attack in :mod:`labkit.registry` names one scenario. :func:`labkit.experiment.run`
asks the scenario, never the attack, how to train a victim, so every attack meets every
defence the same way.

============  ==============================================================  ===========
scenario      the victim ...                                                   attacks
============  ==============================================================  ===========
``scratch``   trains the lab's model from scratch on the (poisoned) data       label flips, backdoors
``transfer``  retrains a linear head on a public, frozen feature extractor     clean-label
``finetune``  fine-tunes its deployed model on a new batch with the poisons    gradient matching
``federated`` averages client updates over rounds; some clients are malicious  malicious clients
``text``      fits TF-IDF + logistic regression on (a sample of) a text corpus  text backdoors
``instruct``  instruction-tunes a tiny generator on prompt/answer pairs         instruction poisoning
============  ==============================================================  ===========

A scenario is a small object with ``prepare(split, seed=, train_kw=)`` (what exists before
the attack: the clean baseline model, an extractor, the targets), ``knowledge(setting)``
(an :class:`AttackerView`: what the attacker is given, e.g. the extractor, surrogates,
guards), ``training_set(setting, poisoned, trial)`` (what the victim and the defender see),
``victim(setting, data, seed, **train_kw)`` (how the victim learns) and ``features(setting,
model, X)`` (what a feature-space detector looks at). Targeted scenarios also draw
``setting.targets``: ``(target_idx, target_class)`` per trial. ``defence_kinds`` lists the
kinds of defence (:data:`labkit.registry.DEFENCE_KINDS`) that make sense for the victim;
:func:`labkit.registry.resolve` refuses the others.

See Also: notebooks/00_welcome.ipynb
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Optional

import numpy as np

from . import models
from .attacks._targeted import choose_targets, choose_targets_one_by_one
from .attacks.gradient_matching import linear_guard
from .attacks.text_backdoor import trigger_control
from .federated import federated_train
from .types import Dataset, PoisonedDataset, make_poisoned

__all__ = ["Setting", "AttackerView", "Scratch", "Transfer", "FineTune", "Federated", "Text", "Instruct", "Rag", "SCENARIOS", "restrict"]


@dataclass(frozen=True, repr=False, eq=False)
class AttackerView:
    """What the scenario gives the attacker, beyond the training set it poisons.

    An attack's crafting function receives the fields its registry entry names in
    ``takes`` (:class:`labkit.registry.AttackSpec`), and nothing else. ``None`` means the
    scenario does not give it.

    test : Dataset
        The test split (targeted attacks pick their target from it).
    target_idx, target_class : int
        This trial's target and the class the attacker wants it read as (targeted
        scenarios; set per trial).
    extractor : nn.Module
        The public, frozen feature extractor (transfer learning).
    guard : nn.Module
        A pixel classifier the attacker trained to keep poisons plausible (transfer).
    surrogates : list of nn.Module
        Models whose gradients the attacker matches (the deployed model when fine-tuning).
    guards : list
        The attacker's own label guards (fine-tuning).
    batch_clean : int
        How many clean rows the victim's fine-tuning batch holds besides the poisons.
    """

    test: object = None
    target_idx: Optional[int] = None
    target_class: Optional[int] = None
    extractor: object = None
    guard: object = None
    surrogates: Optional[list] = None
    guards: Optional[list] = None
    batch_clean: Optional[int] = None

    def for_target(self, target_idx: int, target_class: int) -> "AttackerView":
        return replace(self, target_idx=int(target_idx), target_class=int(target_class))

    def given(self, names) -> dict:
        """The fields ``names`` as keyword arguments; ``ValueError`` for one the scenario
        does not give (an attack registered with the wrong scenario)."""
        known = {f.name for f in fields(self)}
        missing = [n for n in names if n not in known or getattr(self, n) is None]
        if missing:
            raise ValueError(f"this scenario gives the attacker no {', '.join(missing)}")
        return {n: getattr(self, n) for n in names}

    def __repr__(self) -> str:
        have = [f.name for f in fields(self) if getattr(self, f.name) is not None]
        return f"AttackerView({', '.join(have)})"


@dataclass
class Setting:
    """What exists before the attack, for one seed: the data, the victim trained on clean
    data (``baseline``), and per scenario its extras (extractor, deployed model, targets)."""

    train: Dataset
    test: Dataset
    seed: int
    train_kw: dict
    baseline: object = None
    targets: Optional[tuple] = None
    extras: dict = field(default_factory=dict)


def restrict(poisoned: PoisonedDataset, rows) -> PoisonedDataset:
    """``poisoned.subset(rows)`` that keeps the ground truth (which of those rows are poisons)."""
    rows = np.asarray(rows, np.int64)
    return make_poisoned(poisoned.clean.subset(rows), X=poisoned.X[rows], y=poisoned.y[rows],
                         idx=np.flatnonzero(np.isin(rows, poisoned.poison_idx)),
                         attack=poisoned.attack, params=poisoned.params,
                         target_idx=poisoned.target_idx, target_class=poisoned.target_class,
                         source_class=poisoned.source_class, trigger=poisoned.trigger)


class Scratch:
    """The victim trains the lab's model from scratch on the whole (poisoned) training set."""

    name = "scratch"
    targeted = False
    defence_kinds = ("detector", "training", "aggregation", "model", "inference", "model_repair")

    def prepare(self, split, *, seed: int, train_kw: dict, baseline=None) -> Setting:
        s = Setting(split.train, split.test, seed, dict(train_kw))
        s.baseline = baseline if baseline is not None else self.victim(s, split.train, seed)
        return s

    def knowledge(self, setting: Setting) -> AttackerView:
        return AttackerView(test=setting.test)

    def training_set(self, setting: Setting, poisoned: PoisonedDataset, trial: int) -> PoisonedDataset:
        return poisoned

    def victim(self, setting: Setting, data: Dataset, seed: int, **train_kw):
        return models.train(data, seed=seed, **{**setting.train_kw, **train_kw})

    robust_victim = victim

    def features(self, setting: Setting, model, X) -> np.ndarray:
        return models.embed(model, X)

    def inspected(self, setting: Setting, victim):
        """The model a detector inspects: the one trained on the suspect data."""
        return victim


class Transfer(Scratch):
    """Transfer learning: a public extractor (trained on other data) is frozen and the victim
    retrains a linear head for ``head_epochs``. A ``training`` defence retrains end to end
    instead (the defender's own way out of a poisoned extractor's blind spots)."""

    name = "transfer"
    targeted = True
    defence_kinds = ("detector", "training", "aggregation")

    def __init__(self, *, n_targets: int = 10, head_epochs: int = 40):
        if n_targets < 1 or head_epochs < 1:
            raise ValueError(f"need n_targets >= 1 and head_epochs >= 1, got {n_targets}, {head_epochs}")
        self.n_targets, self.head_epochs = int(n_targets), int(head_epochs)

    def prepare(self, split, *, seed: int, train_kw: dict, baseline=None) -> Setting:
        s = Setting(split.train, split.test, seed, dict(train_kw))
        s.extras["extractor"] = models.pretrained_extractor()
        s.baseline = self.victim(s, split.train, seed)
        s.extras["guard"] = models.train(split.train, seed=seed + 1, device="cpu")
        s.targets = choose_targets_one_by_one(s.baseline, split.test, self.n_targets, rng=seed)
        return s

    def knowledge(self, setting: Setting) -> AttackerView:
        return AttackerView(test=setting.test, extractor=setting.extras["extractor"],
                            guard=setting.extras["guard"])

    def victim(self, setting: Setting, data: Dataset, seed: int, **train_kw):
        return models.transfer_victim(data, setting.extras["extractor"], epochs=self.head_epochs,
                                      seed=seed, **train_kw)

    def robust_victim(self, setting: Setting, data: Dataset, seed: int, **train_kw):
        return models.train(data, seed=seed, device="cpu", **train_kw)

    def features(self, setting: Setting, model, X) -> np.ndarray:
        return models.embed(model, X)


class FineTune(Scratch):
    """The victim fine-tunes its deployed model (whose weights the attacker knows) for
    ``finetune_epochs`` on a new batch: the poisons plus ``n_clean`` replayed clean rows.
    With ``guard``, the attacker also keeps the poisons plausible to a linear classifier of
    their own (on development seeds it costs success while the held-out checkers, a linear
    one included, read the poisons as well without it)."""

    name = "finetune"
    targeted = True
    defence_kinds = ("detector", "training", "aggregation")

    def __init__(self, *, n_targets: int = 10, n_clean: int = 300, finetune_epochs: int = 1,
                 guard: bool = True):
        if n_targets < 1 or n_clean < 0 or finetune_epochs < 1:
            raise ValueError(f"need n_targets >= 1, n_clean >= 0, finetune_epochs >= 1; "
                             f"got {n_targets}, {n_clean}, {finetune_epochs}")
        self.n_targets, self.n_clean = int(n_targets), int(n_clean)
        self.finetune_epochs, self.guard = int(finetune_epochs), bool(guard)

    def prepare(self, split, *, seed: int, train_kw: dict, baseline=None) -> Setting:
        s = Setting(split.train, split.test, seed, dict(train_kw))
        s.baseline = models.train(split.train, seed=seed, **s.train_kw)          # deployed
        s.targets = choose_targets(s.baseline, split.test, self.n_targets, rng=seed)
        s.extras["guards"] = [linear_guard(split.train, seed=seed)] if self.guard else []
        return s

    def knowledge(self, setting: Setting) -> AttackerView:
        return AttackerView(test=setting.test, surrogates=[setting.baseline], guards=setting.extras["guards"],
                            batch_clean=self.n_clean)

    def training_set(self, setting: Setting, poisoned: PoisonedDataset, trial: int) -> PoisonedDataset:
        rest = np.setdiff1d(np.arange(len(poisoned)), poisoned.poison_idx)
        n = min(self.n_clean, rest.size)
        extra = np.random.default_rng(setting.seed + 7 + trial).choice(rest, n, replace=False)
        return restrict(poisoned, np.concatenate([poisoned.poison_idx, np.sort(extra)]))

    def victim(self, setting: Setting, data: Dataset, seed: int, **train_kw):
        kw = {k: v for k, v in {**setting.train_kw, **train_kw}.items() if k not in ("model", "epochs")}
        return models.fine_tune(setting.baseline, data, epochs=self.finetune_epochs, seed=seed, **kw)

    robust_victim = victim

    def inspected(self, setting: Setting, victim):
        """The deployed model: the defender audits the new batch before fine-tuning on it
        (after fine-tuning the poisons are fitted and their gradients have vanished)."""
        return setting.baseline


class Federated(Scratch):
    """Federated averaging over ``rounds``: every client trains locally on its shard; the
    server aggregates the updates. The attack is which clients are malicious and what they
    send; the victim is the global model."""

    name = "federated"
    targeted = False
    defence_kinds = ("aggregation",)

    def __init__(self, *, rounds: int = 40, local_epochs: int = 1, lr: float = 0.3,
                 batch_size: int = 32, server_lr: float = 1.0):
        self.kw = dict(rounds=rounds, local_epochs=local_epochs, lr=lr, batch_size=batch_size,
                       server_lr=server_lr)

    def knowledge(self, setting: Setting) -> AttackerView:
        return AttackerView()

    def victim(self, setting: Setting, data: Dataset, seed: int, aggregate=None, **train_kw):
        p = data.params if isinstance(data, PoisonedDataset) else {}
        clean = data.clean if isinstance(data, PoisonedDataset) else data
        result = federated_train(
            clean, test=setting.test, n_clients=p.get("n_clients", 10), iid=p.get("iid", True),
            malicious_clients=p.get("malicious_clients", ()), attack=p.get("update", "sign_flip"),
            boost=p.get("boost"), z=p.get("z"), shard_seed=p.get("shard_seed"), aggregate=aggregate,
            model=setting.train_kw.get("model", "mlp"), seed=seed, **self.kw)
        result.model.round_accuracy = result.accuracy     # the global model's test accuracy per round
        return result.model

    robust_victim = victim

    def features(self, setting: Setting, model, X) -> np.ndarray:
        raise ValueError("federated runs have no training set a detector could look at")


class Text(Scratch):
    """A text classifier (lesson 7): the victim fits TF-IDF + logistic regression
    (:func:`labkit.models.text_classifier`, inverse regularisation ``C``) on a bag-of-words
    corpus (:mod:`labkit.text`). ``n_train`` keeps a stratified sample of that many training
    paragraphs (drawn from the seed; ``None`` keeps all): the corpus size of the
    constant-count experiment. The attacker gets the test split's format only. Every
    trial also trains a control victim (:meth:`control`: the same trigger in random rows
    with true labels)."""

    name = "text"
    targeted = False
    defence_kinds = ("detector", "inference")

    def __init__(self, *, n_train: Optional[int] = None, C: float = 100.0):
        if n_train is not None and (not isinstance(n_train, (int, np.integer)) or n_train < 8):
            raise ValueError(f"n_train must be an int >= 8 or None, got {n_train!r}")
        if not C > 0:
            raise ValueError(f"C must be > 0, got {C}")
        self.n_train, self.C = (None if n_train is None else int(n_train)), float(C)

    def prepare(self, split, *, seed: int, train_kw: dict, baseline=None) -> Setting:
        train = split.train
        if self.n_train is not None:
            if self.n_train > len(train):
                raise ValueError(f"n_train={self.n_train} exceeds the {len(train)} training rows")
            from .data import subset
            train = subset(train, self.n_train, rng=np.random.default_rng([int(seed), 0, 4]))
        s = Setting(train, split.test, seed, {})
        s.baseline = baseline if baseline is not None else self.victim(s, train, seed)
        return s

    def victim(self, setting: Setting, data: Dataset, seed: int, **train_kw):
        return models.text_classifier(data, C=self.C)

    robust_victim = victim

    def control(self, setting: Setting, poisoned: PoisonedDataset, rng) -> PoisonedDataset:
        """The same-budget control: the trigger in as many random rows, true labels kept."""
        return trigger_control(poisoned, rng=rng)

    def features(self, setting: Setting, model, X) -> np.ndarray:
        return model.features(X)


class Instruct(Text):
    """Instruction tuning (lesson 7): the victim tunes a tiny generator
    (:func:`labkit.models.answer_generator`: it writes its answer word by word) on
    instruction/answer pairs (:func:`labkit.text.instructions`); accuracy is exact match of
    the written answer. ``n_train`` and the control as in :class:`Text`; each trial also
    reports ``triggered_without_trigger``, how often the attacker's answer is written for a
    clean test prompt."""

    name = "instruct"

    def __init__(self, *, n_train: Optional[int] = None, epochs: int = 40):
        super().__init__(n_train=n_train)
        if not (isinstance(epochs, (int, np.integer)) and epochs >= 1):
            raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
        self.epochs = int(epochs)

    def victim(self, setting: Setting, data: Dataset, seed: int, **train_kw):
        from .text import answers
        return models.answer_generator(data, answers(), epochs=self.epochs, seed=seed)

    robust_victim = victim

    def trial_extra(self, setting: Setting, victim, poisoned: PoisonedDataset) -> dict:
        said = models.predict(victim, setting.test.X)
        return {"triggered_without_trigger": float((said == poisoned.target_class).mean())}


class Rag(Scratch):
    """Retrieval-augmented question answering (lesson 8): the "training set" is the knowledge
    base, the victim indexes it (:func:`labkit.rag.rag_pipeline`, ``top_k`` passages read per
    question; no training), the test set holds the questions. The attacker sees the
    questions (it picks its targets among them) and writes passages. The knowledge base as
    reviewed is signed by the defender before the attack (``extras["signed"]``: the manifest
    and the reviewer's key, for :func:`labkit.defences.rag.signed_passages`). Every trial
    also runs the same-budget control (random passages with the same wrong titles) and
    reports ``accuracy_untargeted`` (questions the attacker did not target, with and without
    the attack) and the certified radius of each target under the clean knowledge base."""

    name = "rag"
    targeted = False
    defence_kinds = ("detector", "model")

    def __init__(self, *, top_k: int = 5):
        if not (isinstance(top_k, (int, np.integer)) and top_k >= 1):
            raise ValueError(f"top_k must be an int >= 1, got {top_k!r}")
        self.top_k = int(top_k)

    def prepare(self, split, *, seed: int, train_kw: dict, baseline=None) -> Setting:
        import hashlib

        from .defences.provenance import create_manifest
        s = Setting(split.train, split.test, seed, {})
        key = hashlib.sha256(f"labkit reviewer key {int(seed)}".encode()).digest()   # the defender's, simulated
        s.extras["signed"] = {"manifest": create_manifest(split.train, key=key, source="reviewed knowledge base",
                                                          created="2026-01-01T00:00:00+00:00"), "key": key}
        s.baseline = baseline if baseline is not None else self.victim(s, split.train, seed)
        return s

    def victim(self, setting: Setting, data: Dataset, seed: int, **train_kw):
        from .rag import rag_pipeline
        return rag_pipeline(data, top_k=self.top_k)

    robust_victim = victim

    def control(self, setting: Setting, poisoned: PoisonedDataset, rng) -> PoisonedDataset:
        """The same-budget control: random passages of the knowledge base, same wrong titles."""
        from .attacks.rag_poison import random_passages
        return random_passages(poisoned, rng=rng)

    def features(self, setting: Setting, model, X) -> np.ndarray:
        return model.features(X)

    def trial_extra(self, setting: Setting, victim, poisoned: PoisonedDataset) -> dict:
        rest = np.setdiff1d(np.arange(len(setting.test)), poisoned.target_idx)
        right = lambda model: float((models.predict(model, setting.test.X[rest]) == setting.test.y[rest]).mean())
        clean = setting.baseline                     # the same reader over the clean knowledge base
        return {"accuracy_untargeted": right(victim), "accuracy_untargeted_no_attack": right(clean),
                "certified_radius_targets": [int(r) for r in clean.certify(setting.test.X[poisoned.target_idx])[1]]}


#: Scenario name -> class (instantiated per run with the run's scenario settings).
SCENARIOS = {cls.name: cls for cls in (Scratch, Transfer, FineTune, Federated, Text, Instruct, Rag)}
