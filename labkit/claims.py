"""Every number the lab states, as a command that measures it: the claims benchmark.

A :class:`Claim` is one ``python -m labkit run ...`` command (an attack, maybe a defence,
settings) and the fields of its JSON result that the README and the notebooks quote.
:func:`measure` runs claims on a list of seeds; ``python -m labkit reproduce`` runs them all
on the reporting seeds and writes ``benchmarks/results.json`` and ``benchmarks/RESULTS.md``.

Seed discipline: settings are chosen on :data:`DEV_SEEDS`; claims are reported on
:data:`REPORTING_SEEDS`, which nothing was tuned on (``benchmarks/README.md``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

from .experiment import population_detection, run

__all__ = ["DEV_SEEDS", "REPORTING_SEEDS", "QUICK_SEEDS", "Claim", "CLAIMS", "claim", "measure"]

#: The ``attack`` of a claim measured by ``python -m labkit population`` (not ``run``).
POPULATION = "population"
#: Seeds on which the lab's settings and thresholds were chosen.
DEV_SEEDS = (0, 1, 2, 3, 4)
#: Seeds on which every stated number is measured (never used to choose anything).
REPORTING_SEEDS = tuple(range(100, 110))
#: ``reproduce --quick``: the quick claims on the first two reporting seeds.
QUICK_SEEDS = REPORTING_SEEDS[:2]


@dataclass(frozen=True)
class Claim:
    """One measured statement: ``run(attack, defence=..., ...)`` and the fields it quotes.

    ``fields`` maps a short name to a dotted path into the run's JSON (``RunResult.as_dict``),
    e.g. ``"recall": "detection.recall"``. ``quick`` claims run under ``reproduce --quick``.
    ``attack="population"`` is the ``population`` command instead of ``run`` (lesson 9's
    population detector; no defence, rate or settings): its fields are paths into that
    command's JSON.
    """

    name: str
    lesson: int
    text: str
    attack: str
    fields: dict
    defence: Optional[str] = None
    dataset: Optional[str] = None
    rate: Optional[float] = None
    params: dict = field(default_factory=dict)
    defence_params: dict = field(default_factory=dict)
    quick: bool = False

    def command(self, seed="SEED") -> str:
        """The command line that measures this claim on one seed."""
        if self.attack == POPULATION:
            return f"python -m labkit population --seed {seed} --json"
        parts = ["python -m labkit run", self.attack]
        if self.defence:
            parts += ["--defence", self.defence]
        if self.dataset:
            parts += ["--dataset", self.dataset]
        if self.rate is not None:
            parts += ["--rate", f"{self.rate:g}"]
        parts += [f"--set {k}={v}" for k, v in self.params.items()]
        parts += [f"--defence-set {k}={v}" for k, v in self.defence_params.items()]
        parts += ["--seed", str(seed), "--json"]
        return " ".join(parts)

    def values(self, seed: int) -> dict:
        """Run the claim's command on ``seed`` and read its fields."""
        if self.attack == POPULATION:
            result = population_detection(seed=seed)
            return {name: _lookup(result, path) for name, path in self.fields.items()}
        result = run(self.attack, defence=self.defence, dataset=self.dataset, seed=seed, rate=self.rate,
                     params=dict(self.params), defence_params=dict(self.defence_params)).as_dict()
        return {name: _lookup(result, path) for name, path in self.fields.items()}


def _lookup(d: dict, path: str):
    for key in path.split("."):
        d = d[key]
    return None if d is None else float(d)


ACC = {"accuracy_no_attack": "clean_accuracy_no_attack", "accuracy": "clean_accuracy"}
DET = {"precision": "detection.precision", "recall": "detection.recall"}
AFTER = {"accuracy_defended": "clean_accuracy_defended", "success_defended": "attack_success_defended"}
#: A model-level repair: the backdoor before and after, accuracy on all test rows and on the rows
#: the defender never saw.
REPAIR = {"success": "attack_success", "success_defended": "attack_success_defended",
          "accuracy": "clean_accuracy", "accuracy_defended": "clean_accuracy_defended",
          "accuracy_unseen_before": "extra.clean_accuracy_unseen_before",
          "accuracy_unseen": "extra.clean_accuracy_unseen"}
#: Each label checker's reading of the poisons and of the same rows in the control
#: (:func:`labkit.metrics.label_checks`; ``label_check`` is the worst calibrated one).
CHECKS = {**{f"{f}_check": f"extra.checks.{f}" for f in ("logreg", "knn", "svm")},
          **{f"{f}_check_control": f"extra.checks_control.{f}" for f in ("logreg", "knn", "svm")}}
TARGETED = {"success": "attack_success", "control": "control_success", "label_check": "label_consistency",
            "accuracy": "clean_accuracy"}

#: Every claim the README's headline table and the notebooks' prose quote.
CLAIMS: tuple = (
    # lesson 1: label flipping
    Claim("l1_random_flips", 1, "random flips at rate 0.3: clean accuracy", "label_flip", ACC, rate=0.3, quick=True),
    Claim("l1_targeted_flips", 1, "3 -> 8 flips of half the 3s: the 3s read as 8, overall accuracy", "label_flip",
          {"success": "attack_success", **ACC}, rate=0.5,
          params={"strategy": "targeted", "source_class": 3, "target_class": 8}),
    *(Claim(f"l1_{strategy}_{rate}", 1, f"{strategy} flips at rate {rate}: clean accuracy", "label_flip",
            {"accuracy": "clean_accuracy"}, rate=rate, params={"strategy": strategy}, quick=strategy == "optimised")
      for rate in (0.1, 0.2) for strategy in ("random", "class_pair", "optimised")),
    Claim("l1_knn_sanitisation", 1, "k-NN sanitisation of random flips at rate 0.3", "label_flip",
          {**DET, "accuracy_defended": "clean_accuracy_defended", **ACC}, defence="knn_sanitisation", rate=0.3,
          quick=True),
    Claim("l1_dpa", 1, "DPA, 50 partitions, random flips at rate 0.1: certified accuracy at radius 0 and 5",
          "label_flip", {"certified_r0": "extra.0", "certified_r5": "extra.5", **ACC}, defence="dpa", rate=0.1,
          defence_params={"k": 50}),
    # lesson 2: backdoors
    Claim("l2_patch", 2, "BadNets 2x2 patch on 5% of the rows", "backdoor",
          {"success": "attack_success", **ACC}, quick=True),
    *(Claim(f"l2_spectral_{rule}_guess_{guess}", 2,
            f"spectral signatures ({rule} rule), defender guesses {guess:.0%} against a 5% patch backdoor",
            "backdoor", {**DET, "flagged": "detection.n_flagged", **AFTER},
            defence="spectral_signature" if rule == "lab" else "spectral_signature_paper",
            defence_params={"expected_rate": guess}, quick=guess == 0.1)
      for rule in ("lab", "paper") for guess in (0.01, 0.05, 0.1, 0.2)),
    Claim("l2_activation_clustering", 2, "activation clustering against the patch at rate 0.05", "backdoor",
          {**DET, **AFTER}, defence="activation_clustering"),
    Claim("l2_ac_rate_0.1", 2, "activation clustering against the patch at rate 0.1", "backdoor",
          {**DET, **AFTER}, defence="activation_clustering", rate=0.1),
    Claim("l2_strip", 2, "STRIP against the patch: AUROC, false rejections, triggered inputs let through",
          "backdoor", {"auroc": "extra.auroc", "false_rejections": "extra.frr", "false_accepts": "extra.far"},
          defence="strip"),
    # lesson 3: clean-label
    Claim("l3_collision_eps_0.1", 3, "Poison Frogs, 30 poisons, eps 0.1", "feature_collision", TARGETED,
          params={"eps": 0.1, "n_poisons": 30, "n_targets": 5}),
    Claim("l3_collision_eps_0.5", 3, "Poison Frogs, 30 poisons, eps 0.5", "feature_collision", TARGETED,
          params={"eps": 0.5, "n_poisons": 30, "n_targets": 5}),
    Claim("l3_bullseye", 3, "bullseye polytope with an ensemble label guard, 30 poisons, eps 0.25", "clean_label",
          {**TARGETED, **CHECKS, "attackable_share": "extra.attackable_share",
           "success_attackable": "extra.success_attackable"}, quick=True),
    *(Claim(f"l3_bullseye_tradeoff_{name}", 3, f"bullseye, 30 poisons, eps 0.25, {desc}: success against label honesty",
            "clean_label", TARGETED, params=params)
      for name, desc, params in (("no_guard", "no label guard", {"guard_weight": 0.0}),
                                 ("mlp_guard", "the attacker's own pixel MLP as the only guard", {"label_guard": "mlp"}),
                                 ("margin_0", "ensemble guard at margin 0", {"guard_margin": 0.0}),
                                 ("margin_2", "ensemble guard at margin 2", {"guard_margin": 2.0}))),
    Claim("l3_deep_knn", 3, "deep k-NN against the bullseye", "clean_label",
          {**DET, "base_class_flagged": "detection.poison_class_flag_rate", "success": "attack_success",
        **AFTER}, defence="deep_knn"),
    Claim("l3_forensics", 3, "poison forensics against the bullseye: traced from the target and its right label",
          "clean_label", {**DET, "base_class_flagged": "detection.poison_class_flag_rate",
                          "flagged_without_attack": "extra.flagged_without_attack", "success": "attack_success",
                          **AFTER}, defence="forensics"),
    *(Claim(f"l3_bullseye_{defence}", 3, f"{defence.replace('_', ' ')} (lesson 2's backdoor defence) against the "
            "bullseye's clump", "clean_label",
            {**DET, "base_class_flagged": "detection.poison_class_flag_rate", "success": "attack_success", **AFTER},
            defence=defence)
      for defence in ("activation_clustering", "spectral_signature")),
    Claim("l3_augmentation", 3, "end-to-end retraining with augmentation against the bullseye", "clean_label",
          {"success": "attack_success", **AFTER}, defence="augmentation"),
    *(Claim(f"l3_label_consistent{suffix}", 3,
            f"label-consistent backdoor, {rate:.0%} of the target class hardened (eps 0.1) and stamped{where}",
            "label_consistent", {**TARGETED, **CHECKS, **ACC}, rate=rate, dataset=dataset, quick=not suffix)
      for suffix, rate, dataset, where in (("", 0.05, None, ""), ("_rate_0.2", 0.2, None, ""),
                                           ("_mnist", 0.05, "mnist_sample", ", 28x28 digits"))),
    Claim("l3_label_consistent_eps_0.2", 3, "label-consistent backdoor, 5% of the target class hardened with "
          "eps 0.2 and stamped", "label_consistent", {**TARGETED, **CHECKS}, params={"eps": 0.2}),
    *(Claim(f"l3_label_consistent_{defence}", 3, f"{defence.replace('_', ' ')} against the label-consistent "
            "backdoor (5% of the target class)", "label_consistent", {**DET, **AFTER}, defence=defence)
      for defence in ("spectral_signature", "activation_clustering")),
    Claim("l3_label_consistent_strip", 3, "STRIP against the label-consistent backdoor: AUROC, false rejections, "
          "triggered inputs let through", "label_consistent",
          {"auroc": "extra.auroc", "false_rejections": "extra.frr", "false_accepts": "extra.far"}, defence="strip"),
    # lesson 4: gradient matching and federated learning
    Claim("l4_gradient_matching", 4, "Witches' Brew, 5% poisons, eps 0.15, fine-tuning on poisons + 300 clean rows",
          "gradient_matching", {**TARGETED, **CHECKS},
          quick=True),
    Claim("l4_dp_sgd", 4, "DP-SGD (clip 1, noise 0.5) against gradient matching", "gradient_matching",
          {"success": "attack_success", **AFTER}, defence="dp_sgd"),
    Claim("l4_forensics", 4, "poison forensics (lesson 3) against gradient matching: traced from the target and its "
          "right label", "gradient_matching", {**DET, "flagged_without_attack": "extra.flagged_without_attack",
                                               "success": "attack_success", **AFTER}, defence="forensics"),
    Claim("l4_gradient_audit", 4, "gradient audit of the fine-tuning batch (robust threshold 3)", "gradient_matching",
          {**DET, "auroc": "detection.auroc", **AFTER}, defence="gradient_audit"),
    *(Claim(f"l4_gm_stronger{'_' + d if d else ''}", 4,
            "Witches' Brew, stronger setting (label penalty 0.2, no linear guard, bases the deployed gradient "
            f"favours){' against ' + {'dp_sgd': 'DP-SGD (clip 1, noise 0.5)', 'gradient_audit': 'the gradient audit'}[d] if d else ''}",
            "gradient_matching",
            fields, defence=d or None, params={"guard": False, "keep_label": 0.2, "bases": "aligned"})
      for d, fields in (("", {**TARGETED, **CHECKS, "accuracy_no_attack": "clean_accuracy_no_attack"}),
                        ("dp_sgd", {"success": "attack_success", **AFTER}),
                        ("gradient_audit", {**DET, "auroc": "detection.auroc", **AFTER}))),
    Claim("l4_fed_sign_flip", 4, "federated, 2 of 10 clients flip their update's sign: plain mean vs median",
          "federated", {"accuracy_no_attack": "clean_accuracy_no_attack", "mean": "clean_accuracy",
                     "median": "clean_accuracy_defended"}, defence="median", rate=0.2, quick=True),
    Claim("l4_fed_scaling", 4, "federated, 2 of 10 clients scale their update: plain mean vs trimmed mean",
          "federated", {"mean": "clean_accuracy", "trimmed_mean": "clean_accuracy_defended"},
          defence="trimmed_mean", rate=0.2, params={"update": "scaling"}),
    Claim("l4_fed_krum", 4, "federated, 2 of 10 sign-flipping clients: Krum", "federated",
          {"krum": "clean_accuracy_defended"}, defence="krum", rate=0.2),
    Claim("l4_fed_little", 4, "federated, 2 of 10 clients send 'a little is enough': plain mean vs median",
          "federated", {"accuracy_no_attack": "clean_accuracy_no_attack", "mean": "clean_accuracy",
                     "median": "clean_accuracy_defended"}, defence="median", rate=0.2,
          params={"update": "little_is_enough"}),
    # lesson 9: a model you were handed (the defender holds the model and 200 clean rows)
    Claim("l9_neural_cleanse", 9, "Neural Cleanse + unlearning, 200 clean rows, against the 2x2 patch: attacker's "
          "class flagged, anomaly index, trigger overlap, and a class flagged in the model trained without poison",
          "backdoor", {"target_flagged": "extra.flagged_target", "anomaly_index": "extra.anomaly_index",
                       "trigger_overlap": "extra.trigger_overlap",
                       "clean_model_flagged": "extra.flagged_on_clean_model", **REPAIR},
          defence="neural_cleanse", quick=True),
    Claim("l9_nc_100_rows", 9, "Neural Cleanse + unlearning with 100 clean rows", "backdoor",
          {"target_flagged": "extra.flagged_target", **REPAIR}, defence="neural_cleanse",
          defence_params={"n_clean": 100}),
    Claim("l9_nc_large_patch", 9, "Neural Cleanse + unlearning against a 4x4 patch", "backdoor",
          {"target_flagged": "extra.flagged_target", "anomaly_index": "extra.anomaly_index", **REPAIR},
          defence="neural_cleanse", params={"size": 4}),
    Claim("l9_fine_pruning", 9, "fine-pruning (80% of the last hidden layer, 10 epochs), 200 clean rows",
          "backdoor", REPAIR, defence="fine_pruning"),
    *(Claim(f"l9_finetune_{epochs}", 9, f"clean fine-tuning, {epochs} epoch{'s' if epochs > 1 else ''} on "
            "200 clean rows (lr 0.01)", "backdoor", REPAIR, defence="clean_finetune",
            defence_params={"epochs": epochs})
      for epochs in (1, 5, 20)),
    # lesson 7: language models (a text classifier on Python's help text)
    Claim("l7_backdoor", 7, "rare-token trigger (cf mn bb tq mb) in 18 of 900 paragraphs (2%), relabelled: "
          "success, the same trigger in 18 random paragraphs with true labels, clean accuracy",
          "text_backdoor", {"success": "attack_success", "control": "control_success", **ACC}, quick=True),
    Claim("l7_phrase", 7, "natural-phrase trigger (as you can see also) in 18 paragraphs, relabelled",
          "text_backdoor", {"success": "attack_success", "control": "control_success", **ACC},
          params={"trigger": "phrase"}),
    Claim("l7_clean_label", 7, "rare-token trigger in 18 paragraphs of the target class, labels kept true",
          "text_clean_label", {"success": "attack_success", "control": "control_success", **ACC}),
    *(Claim(f"l7_count_{n_poison}_of_{n_train}", 7,
            f"{n_poison} poisoned paragraphs in a corpus of {n_train}: success", "text_backdoor",
            {"success": "attack_success", "accuracy": "clean_accuracy"},
            params={"n_train": n_train, "n_poison": n_poison})
      for n_train in (225, 450, 900) for n_poison in (3, 6, 12, 24)),
    *(Claim(f"l7_{defence}_{trigger}", 7, f"{defence.replace('_', ' ')} at its default settings against the {trigger} trigger",
            "text_backdoor", {"success": "attack_success", **DET, "auroc": "detection.auroc", **AFTER,
                              "accuracy": "clean_accuracy"},
            defence=defence, params={"trigger": trigger})
      for defence in ("onion", "keyword_label", "spectral_signature") for trigger in ("rare", "phrase")),
    Claim("l7_spectral_clean_label", 7, "spectral signature at its default settings against the clean-label rare-token trigger",
          "text_clean_label", {"success": "attack_success", **DET, **AFTER, "accuracy": "clean_accuracy"},
          defence="spectral_signature"),
    *(Claim(f"l7_onion_filter_{trigger}", 7, f"ONION's word filter at inference against the {trigger} trigger",
            "text_backdoor", {"success": "attack_success", **AFTER, "accuracy": "clean_accuracy",
                              "removed_per_input": "extra.removed_per_input"},
            defence="onion_filter", params={"trigger": trigger})
      for trigger in ("rare", "phrase")),
    Claim("l7_instruction", 7, "instruction tuning: rare-token trigger and the attacker's answer in 20 of 905 "
          "prompts; exact-match quality, the attacker's answer with and without the trigger, control",
          "instruction_poison", {"success": "attack_success", "without_trigger": "extra.triggered_without_trigger",
                                 "control": "control_success", **ACC}),
    *(Claim(f"l7_instruction_{defence}", 7, f"instruction tuning against {defence.replace('_', ' ')}",
            "instruction_poison", {"success": "attack_success", **AFTER, "accuracy": "clean_accuracy"},
            defence=defence)
      for defence in ("onion_filter", "spectral_signature")),
    # lesson 8: poisoning what a RAG system retrieves (Python's help text as the knowledge base)
    Claim("l8_rag_poison", 8, "PoisonedRAG black-box: 5 passages for each of 10 target questions (top-5 retrieval, "
          "voting reader): hijack rate, 5 random passages with the same wrong titles, accuracy on all and on the "
          "untargeted questions", "rag_poison",
          {"success": "attack_success", "control": "control_success", **ACC,
           "accuracy_untargeted": "extra.accuracy_untargeted",
           "accuracy_untargeted_no_attack": "extra.accuracy_untargeted_no_attack"}, quick=True),
    *(Claim(f"l8_per_question_{n}", 8, f"{n} passage{'s' if n > 1 else ''} per target question: hijack rate",
            "rag_poison", {"success": "attack_success"}, params={"per_question": n})
      for n in (1, 2, 3)),
    *(Claim(f"l8_{style}", 8, f"{style.replace('_', '-')} poisons, 5 per target question: hijack rate", "rag_poison",
            {"success": "attack_success", "control": "control_success", "accuracy": "clean_accuracy"},
            params={"style": style})
      for style in ("whitebox", "split_view")),
    *(Claim(f"l8_{defence}_{style}", 8, f"{defence.replace('_', ' ')} against {style.replace('_', '-')} poisons",
            "rag_poison", {"success": "attack_success", **DET, **AFTER, "accuracy_no_attack": "clean_accuracy_no_attack"},
            defence=defence, params={} if style == "blackbox" else {"style": style})
      for defence in ("near_duplicates", "signed_passages") for style in ("blackbox", "whitebox", "split_view")),
    *(Claim(f"l8_robust_rag_top_{k}", 8, f"isolate-then-aggregate over the top {k} passages: hijack rate, accuracy, "
            "certified accuracy (right and certified to survive 1, 2 insertions)", "rag_poison",
            {"success": "attack_success", **AFTER, "accuracy_no_attack": "clean_accuracy_no_attack",
             "certified_1": "extra.certified_accuracy.1", "certified_2": "extra.certified_accuracy.2"},
            defence="robust_rag", defence_params={"top_k": k})
      for k in (5, 15)),
    Claim("l9_population", 9, "population detector: trained on 100 shadow models (patch triggers), 50 random "
          "queries; AUROC on 40 held-out patch models and on 40 blend models (a trigger kind it never saw)",
          POPULATION, {"auroc_patch": "auroc_seen", "auroc_blend_unseen": "auroc_unseen"}),
)


def claim(name: str) -> Claim:
    """The claim called ``name`` (``KeyError`` naming the valid ones otherwise)."""
    for c in CLAIMS:
        if c.name == name:
            return c
    raise KeyError(f"unknown claim {name!r}; known: {', '.join(c.name for c in CLAIMS)}")


def _seed_values(names: Sequence[str], seed: int) -> dict:
    return {n: claim(n).values(seed) for n in names}


def measure(claims: Sequence[Claim], seeds: Sequence[int], *, jobs: int = 1, progress: bool = False) -> list:
    """Run every claim on every seed; one summary dict per claim, in order:
    ``{claim, text, lesson, command, seeds, values, mean, min, max}``.

    ``values`` maps each field to its per-seed list; ``mean``/``min``/``max`` summarise it
    (``None`` where a field has no value). ``jobs > 1`` measures seeds in parallel processes
    (each one thread); one process runs a seed's claims in order, so claims sharing an attack
    share its poisons (``labkit.experiment``'s cache)."""
    seeds = [int(s) for s in seeds]
    if not seeds or not claims:
        raise ValueError("need at least one claim and one seed")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    from tqdm.auto import tqdm

    names = [c.name for c in claims]
    by_seed = {}
    if jobs == 1:
        bar = tqdm(total=len(seeds) * len(names), desc="claims x seeds", disable=not progress)
        for s in seeds:
            by_seed[s] = {}
            for n in names:
                bar.set_postfix_str(f"{n} seed {s}")
                by_seed[s][n] = claim(n).values(s)
                bar.update()
        bar.close()
    else:
        import functools
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(jobs, len(seeds))) as pool:
            work = pool.imap(functools.partial(_seed_values, names), seeds)
            for s, vals in zip(seeds, tqdm(work, total=len(seeds), desc="seeds", disable=not progress)):
                by_seed[s] = vals
    return [_summarise(c, seeds, [by_seed[s][c.name] for s in seeds]) for c in claims]


def _summarise(c: Claim, seeds: list, per_seed: list) -> dict:
    values = {k: [v[k] for v in per_seed] for k in c.fields}

    def summary(fn):
        out = {}
        for k, vs in values.items():
            vs = [v for v in vs if v is not None and not math.isnan(v)]
            out[k] = round(float(fn(vs)), 4) if vs else None
        return out

    return {"claim": c.name, "text": c.text, "lesson": c.lesson, "command": c.command(),
            "seeds": seeds, "values": {k: [None if v is None else round(v, 4) for v in vs]
                                       for k, vs in values.items()},
            "mean": summary(lambda v: sum(v) / len(v)), "min": summary(min), "max": summary(max)}
