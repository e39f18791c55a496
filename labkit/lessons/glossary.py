"""The lab's glossary: every term a lesson uses without defining it on the spot.

``notebooks/glossary.md`` is written from :data:`GLOSSARY` by
``python instructor/make_notebook_headers.py``, and each notebook's header lists (and links)
the glossary terms its text uses, found with each entry's pattern.

This module imports nothing but the standard library.
"""
from __future__ import annotations

import re

__all__ = ["GLOSSARY", "anchor", "terms_in", "render"]

#: term -> (pattern that finds it in a notebook's prose, definition). Alphabetical by term.
GLOSSARY = {
    "allow-list": (r"allow-list", "A list of what is permitted (for example the exact classes a config may "
                   "create); everything else is refused. The opposite, a block-list, names what is forbidden "
                   "and lets everything else through."),
    "anomaly index": (r"anomaly index", "Neural Cleanse's score for a class: how far the size of the smallest "
                      "trigger that sends inputs to that class lies below the median of all classes, in median "
                      "absolute deviations. Above 2 counts as suspicious."),
    "attack success": (r"attack success", "The share of test inputs on which the attacker gets what they "
                       "wanted, e.g. triggered inputs sent to the target class. Measured next to clean accuracy, "
                       "which a good attack leaves unchanged."),
    "AUROC": (r"AUROC", "Area under the ROC curve: the probability that a randomly chosen poison gets a higher "
              "suspicion score than a randomly chosen clean row. 0.5 is guessing, 1.0 a perfect ranking."),
    "backdoor": (r"backdoor", "Hidden behaviour planted through training data: the model works normally, "
                 "except on inputs carrying the attacker's trigger."),
    "breakdown point": (r"breakdown point", "The largest share of bad inputs (here: malicious clients) a "
                        "robust statistic can take before an attacker can move it arbitrarily far. The median's "
                        "is one half; the mean's is zero."),
    "Byzantine": (r"[Bb]yzantine", "A participant that may behave arbitrarily, including maliciously and in "
                  "coordination with others (after the Byzantine generals problem)."),
    "certificate": (r"certif", "A guarantee computed for one prediction: it cannot change whatever an attacker "
                    "does within a stated budget (for example, any 5 changed training rows or 2 inserted "
                    "passages). The certified radius is the largest such budget."),
    "clean accuracy": (r"clean accuracy", "Accuracy on ordinary test inputs (no trigger, no target)."),
    "clean-label": (r"clean-label|clean label", "A poisoning attack whose poisons all carry their correct "
                    "label, so checking labels finds nothing."),
    "confident learning": (r"confident learning", "A way to find mislabelled rows: train with cross-validation "
                           "and flag rows whose predicted probability for their own label is unusually low."),
    "control": (r"\bcontrol\b", "An experiment that spends the attacker's budget without the attack's design "
                "(random noise, random rows with the same trigger, random passages). If the control does as "
                "well, the attack's design is not what works."),
    "DP-SGD": (r"DP-SGD", "Differentially private stochastic gradient descent: every example's gradient is "
               "clipped to a maximum norm and Gaussian noise is added, which limits how much any one training "
               "example can steer the model."),
    "entropy": (r"entropy", "How spread out a prediction is over the classes: 0 when the model is certain, "
                "high when it hesitates. STRIP flags inputs whose prediction stays certain under heavy mixing."),
    "epsilon": (r"\beps\b|epsilon|ε", "The attacker's budget for changing an input: the largest change "
                      "allowed to any one pixel (an L-infinity bound)."),
    "feature extractor": (r"feature extractor", "The part of a network that turns an input into the features "
                          "the last layer reads; in transfer learning it is reused and frozen."),
    "federated averaging": (r"federated averag", "Training where clients train on their own data and send "
                            "model updates, which a server averages into the next model."),
    "gradient matching": (r"gradient matching", "Crafting poisons whose training gradient points the same "
                          "way as the gradient that would misclassify the attacker's target."),
    "hijack rate": (r"hijack", "The share of targeted questions answered with the attacker's answer."),
    "Krum": (r"Krum", "A robust aggregation rule that keeps the client update closest to its nearest "
             "neighbours, so that a minority of outliers is ignored."),
    "L-infinity": (r"L-inf|L∞", "The largest absolute change to any single coordinate (pixel). An "
                           "L-infinity budget of 0.1 lets every pixel move by at most 0.1."),
    "median absolute deviation": (r"median absolute", "A robust measure of spread: the median distance of the "
                                  "values from their median."),
    "meta-classifier": (r"meta-classifier", "A classifier whose inputs are models (here: their answers to "
                        "fixed queries) and whose output is whether the model is backdoored."),
    "partition": (r"partition", "A split of the training set into disjoint parts; Deep Partition Aggregation "
                  "trains one model per part and lets them vote."),
    "penultimate activations": (r"penultimate", "The outputs of a network's second-to-last layer: the "
                                "features its last layer classifies. Poisons often stand out there."),
    "pickle": (r"pickle", "Python's object serialisation format. Loading a pickle can call any function, so a "
               "pickled model file can run code."),
    "precision and recall": (r"\bprecision\b|\brecall\b", "Of the rows a defence flags, the share that are "
                             "poisons (precision); of the poisons, the share it flags (recall)."),
    "PSI": (r"\bPSI\b", "Population stability index: how much the distribution of a quantity (e.g. predicted "
            "classes) moved between two periods. A common rule of thumb reads below 0.1 as stable, 0.1-0.25 as "
            "a moderate shift and above 0.25 as a large one."),
    "RAG": (r"\bRAG\b", "Retrieval-augmented generation: a system that looks up passages in a knowledge base "
            "and answers from them."),
    "reporting seeds": (r"reporting seed", "The random seeds on which the lab's full-scale numbers are "
                        "measured. No setting was chosen on them, so the numbers are not tuned to them."),
    "sanitisation": (r"sanitis", "Cleaning a training set before training: removing or relabelling rows a "
                     "check finds suspicious."),
    "shadow model": (r"shadow model", "A model the defender trains themselves, clean or with a backdoor they "
                     "plant, to learn what backdoored models look like."),
    "silhouette": (r"silhouette", "A score in [-1, 1] of how well a clustering separates its groups: near 1 "
                   "means each point is much closer to its own cluster than to the other."),
    "spectral signature": (r"spectral signature", "Poisons of one class shift its features in a common "
                           "direction; projecting onto the top singular vector of the class's features "
                           "scores them."),
    "TF-IDF": (r"TF-IDF", "Term frequency times inverse document frequency: a word's weight in a text, high "
               "when the word is rare across the collection."),
    "threat model": (r"threat model", "What the attacker knows, controls and wants, and what the defender "
                     "holds: stated before any attack or defence is judged."),
    "top k": (r"top[-_ ]k\b|\btop \d+\b", "The k best-ranked passages a retriever hands to the reader."),
    "trigger": (r"trigger", "The pattern (a pixel patch, rare words, a phrase) that activates a backdoor."),
    "trimmed mean": (r"trimmed mean", "A mean that drops the largest and smallest values of every coordinate "
                     "before averaging."),
    "whitening": (r"whiten", "Rescaling features so that their typical spread is the same in every direction, "
                  "so that a small but unusual shift stands out."),
}


def anchor(term: str) -> str:
    """The term's heading anchor in ``glossary.md`` (as JupyterLab and GitHub make them)."""
    return re.sub(r"[^a-z0-9 -]", "", term.lower()).strip().replace(" ", "-")


def terms_in(text: str) -> list:
    """The glossary terms ``text`` uses, alphabetically."""
    return [t for t, (pattern, _) in GLOSSARY.items() if re.search(pattern, text)]


def render() -> str:
    """``notebooks/glossary.md``."""
    out = ["# Glossary", "",
           "The words the lessons use without stopping to define them. Each notebook's header links the "
           "ones it uses.", "",
           "Generated from `labkit/lessons/glossary.py` by `python instructor/make_notebook_headers.py`; do not edit."]
    for term in sorted(GLOSSARY, key=str.lower):
        out += ["", f"### {term}", "", GLOSSARY[term][1]]
    return "\n".join(out)
