"""The lesson manifest: the one table of the lab's lessons, read by every tool.

Each :class:`Lesson` gives a lesson's number and slug (from which its module ``lNN``, its
notebook ``NN_slug.ipynb`` and its exercise prefix ``lN_`` follow), its title, what it
attacks and defends (the README's lesson table), its learning objectives (quoted from the
notebook's first cell; a test keeps them in step), its minutes in the workshop agendas and
the names of the exercises it registers. ``labkit.lessons`` (``LESSONS``, ``load_all``),
``labkit.bench`` (which notebooks, in which order), ``instructor/make_agenda.py``,
``instructor/make_answer_key.py`` and the README's lesson table all read this table.

Lessons are numbered from 0 in the order they are taught; a number may be skipped (a lesson
planned but not built yet), never repeated or out of order. To add lesson 10:
add one :class:`Lesson` here, in its place, then write ``labkit/lessons/l10.py`` (registering
the exercises named here) and ``notebooks/10_<slug>.ipynb``; then regenerate
what is generated from this table (``python instructor/make_lesson_table.py``, the README;
``python instructor/make_answer_key.py``) and measure the new notebook into
``instructor/timings.json`` (``python -m labkit bench --notebooks-only --where one-cpu --json``,
then ``python instructor/make_agenda.py`` and ``python instructor/make_notebook_headers.py``). The tests say which of these you forgot.

This module imports nothing but the standard library (no numpy, no torch).

See Also: instructor/README.md, README.md ("The lessons")
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

__all__ = ["Lesson", "LESSONS", "README_BEGIN", "README_END", "readme_table", "update_readme", "HEADER_BEGIN",
           "HEADER_END", "notebook_header", "update_header"]


@dataclass(frozen=True)
class Lesson:
    """One lesson.

    Attributes
    ----------
    number : int
        0, 1, ...: the order lessons are taught in (strictly increasing; planned lessons
        not built yet leave gaps).
    slug : str
        The notebook's name after its number (``"clean_label"``).
    title : str
        Short title (agendas, answer key, README).
    attack, defences : str
        What the lesson attacks and which defences it tries (the README's lesson table).
    objectives : tuple of str
        The learning objectives, quoted from the notebook's first markdown cell.
    minutes_half_day, minutes_full_day : int or None
        Minutes of reading, exercises and discussion the lesson gets in the half-day and
        full-day agendas, on top of the notebook's measured run time
        (``instructor/timings.json``). Planning figures, not measurements; ``None``: not
        in that agenda.
    exercises : tuple of str
        The exercises the lesson registers (``lk.checks``), in the notebook's order.
    questions : tuple of str
        The questions the lesson answers (the notebook's header, Carpentries-style).
    frameworks : tuple of str
        Ids of the OWASP ML Top 10 (2023: ``ML02``), the OWASP Top 10 for LLM Applications
        (with the edition year: ``LLM04:2025``; ``*`` marks ids taken from crosswalks) and MITRE
        ATLAS (``AML.T0020``, ``AML.M0007``) entries the lesson covers; each is explained, with
        its source, in ``instructor/frameworks.md`` (a test keeps them in step).
    """

    number: int
    slug: str
    title: str
    attack: str
    defences: str
    objectives: tuple
    minutes_half_day: Optional[int]
    minutes_full_day: Optional[int]
    exercises: tuple
    questions: tuple = ()
    frameworks: tuple = ()

    @property
    def module(self) -> str:
        """The lesson's module in :mod:`labkit.lessons` (``"l03"``)."""
        return f"l{self.number:02d}"

    @property
    def stem(self) -> str:
        """The notebook's name without its suffix (``"03_clean_label"``)."""
        return f"{self.number:02d}_{self.slug}"

    @property
    def notebook(self) -> str:
        """The notebook's file name in ``notebooks/`` (``"03_clean_label.ipynb"``)."""
        return f"{self.stem}.ipynb"

    @property
    def exercise_prefix(self) -> str:
        """Every exercise of the lesson is named with this prefix (``"l3_"``)."""
        return f"l{self.number}_"

    @property
    def marker(self) -> str:
        """The pytest marker of the lesson's tests (``pytest -m lesson3``)."""
        return f"lesson{self.number}"


LESSONS: tuple = (
    Lesson(
        0, "welcome", "Welcome",
        attack="how the lab works, threat models, data, baseline, metrics", defences="",
        objectives=(
            "how the lab works: notebooks, the `labkit` helper package, exercises that check themselves",
            "the vocabulary of a *threat model*",
            "the data and the baseline model every lesson starts from",
            "the numbers you will see everywhere (accuracy, attack success, detection quality)",
            "a map of the lessons",
        ),
        minutes_half_day=20, minutes_full_day=25,
        exercises=("l0_which_metric",),
        questions=("How does the lab work, and what do its numbers mean?", "What must be stated before any attack?"),
        frameworks=()),
    Lesson(
        1, "label_flipping", "Label flipping",
        attack="random, targeted, class-pair heuristic and greedy optimised label flips",
        defences="k-NN label sanitisation, confident learning, Deep Partition Aggregation (certified)",
        objectives=(
            "flip labels four ways (random, targeted at one class, a class-pair heuristic, a greedy "
            "optimised attack)",
            "see what each does to a model",
            "try three defences: k-NN label sanitisation, confident learning, and Deep Partition "
            "Aggregation, whose guarantee holds whatever the attacker does",
        ),
        minutes_half_day=35, minutes_full_day=45,
        exercises=("l1_certified_radius", "l1_sanitiser_settings", "l1_which_evades"),
        questions=("How much damage do flipped labels do, and which flips hurt most?", "Which defences undo them, and which can prove a bound?"),
        frameworks=("ML02", "LLM03:2023", "LLM04:2025", "LLM05:2026*", "AML.T0020", "AML.T0059", "AML.M0007", "AML.M0006")),
    Lesson(
        2, "backdoors", "Backdoors",
        attack="patch (BadNets) and blended triggers",
        defences="activation clustering, spectral signatures, STRIP",
        objectives=(
            "plant a backdoor with a patch trigger (BadNets) or a blended trigger, and measure it with "
            "*attack success* next to clean accuracy and a no-poison baseline",
            "explain why poisoned rows stand out *inside the model* (penultimate activations), and use "
            "two detectors that exploit it: **spectral signatures** and **activation clustering**",
            "guard a model at inference time with **STRIP**, and read its false rejection / false "
            "acceptance rates",
            "say when each defence fails, with numbers",
        ),
        minutes_half_day=35, minutes_full_day=45,
        exercises=("l2_cheap_backdoor", "l2_rows_to_drop", "l2_which_breaks_at_high_rate"),
        questions=("How do a few stamped images plant a backdoor that clean accuracy never shows?", "How do defenders find the poisoned rows, and when do they fail?"),
        frameworks=("ML02", "LLM03:2023", "LLM04:2025", "LLM05:2026*", "AML.T0020", "AML.T0018.000", "AML.T0043.004", "AML.M0007", "AML.M0008")),
    Lesson(
        3, "clean_label", "Clean-label poisoning",
        attack="feature collision, and a clean-label technique that works at workshop scale",
        defences="deep k-NN, feature-space filtering, poison forensics",
        objectives=(
            "explain how a handful of *correctly labelled*, barely changed images can make a model "
            "misread one chosen test image (a targeted, clean-label attack), and why an auditor "
            "checking labels finds nothing",
            "say **when** such attacks work (a victim that keeps a feature extractor the attacker "
            "knows: transfer learning) and when they do not (small budgets, end-to-end retraining)",
            "measure success honestly: many targets, a random-perturbation control of the same size, "
            "and a check that an independent classifier still reads every poison as its own label",
            "run deep k-NN (Peri et al. 2020) and lesson 2's feature-space detectors against the "
            "poisons, and explain when they catch them and when they miss them; trace one wrong "
            "prediction back to the poisons behind it (poison forensics) and say what it needs",
            "plant a backdoor whose labels are all correct (label-consistent, Turner et al. 2019) and "
            "say which of lesson 2's defences still see it",
        ),
        minutes_half_day=None, minutes_full_day=35,
        exercises=("l3_knn_k", "l3_threat_model", "l3_cluster_sees"),
        questions=("How can correctly labelled, barely changed images make a model misread one chosen input?", "When do such attacks work, and what catches them?",
                   "Can a backdoor be planted without a single wrong label?"),
        frameworks=("ML02", "ML07", "LLM03:2023", "LLM04:2025", "LLM05:2026*", "AML.T0020", "AML.T0010.003", "AML.M0007")),
    Lesson(
        4, "gradient_manipulation", "Gradient manipulation",
        attack="gradient-matching poisons; malicious federated clients",
        defences="DP-SGD gradient shaping, gradient audit, robust aggregation",
        objectives=(
            "explain what gradient matching optimises and why it needs the victim to take *gradient "
            "steps on the poisons* (here: fine-tuning the deployed model on a new batch)",
            "measure a targeted attack honestly: success over several targets, next to a random-noise "
            "control with the same budget and `eps`, and a clean-label check by an independent model",
            "use DP-SGD (per-sample clipping plus noise) and a gradient audit as defences, and read "
            "their trade-off curves",
            "simulate federated averaging, attack it with sign flipping, scaling (model replacement) "
            "and \"a little is enough\", and say which robust aggregation rule survives which attack",
        ),
        minutes_half_day=None, minutes_full_day=45,
        exercises=("l4_krum_pick", "l4_median_breakdown", "l4_clip_update"),
        questions=("How do poisons that match a gradient hijack fine-tuning, and malicious clients federated learning?", "What do DP-SGD, audits and robust aggregation buy, at what price?"),
        frameworks=("ML02", "ML10", "LLM03:2023", "LLM04:2025", "LLM05:2026*", "AML.T0020", "AML.T0018.000", "AML.M0007")),
    Lesson(
        5, "defence_in_depth", "Defence in depth and the capstone",
        attack="a hidden mix of all four",
        defences="audits, provenance, robust training, monitoring",
        objectives=(
            "**data audits**: statistical checks on every batch of training data",
            "**provenance**: knowing exactly which rows came from where, and noticing any change",
            "**robust training**: training choices that blunt some attacks",
            "**monitoring**: comparing every release with the last trusted one, in testing and in use",
            "**people and process**: who reviews what, and what happens when an alarm goes off",
            "Flag the poisons and get an honest score",
        ),
        minutes_half_day=40, minutes_full_day=50,
        exercises=("l5_capstone", "l5_blind_spot"),
        questions=("How do audits, provenance, robust training and monitoring combine when the attack is unknown?", "Can you find a hidden mix of poisons?"),
        frameworks=("ML02", "LLM03:2023", "LLM04:2025", "LLM05:2026*", "AML.T0020", "AML.T0019", "AML.M0007", "AML.M0025", "AML.M0008", "AML.M0024", "AML.M0003")),
    Lesson(
        6, "supply_chain", "Supply chain",
        attack="model files and configs that run code when loaded",
        defences="safe loaders, scanning, allow-lists, hash pinning",
        objectives=(
            "explain why loading a pickle-based checkpoint can run code, and why an error message is "
            "not safety",
            "name the metadata carriers (YAML, `config.json`, safetensors `__metadata__`, `.nemo` "
            "archives) through which a `_target_` reaches `hydra.utils.instantiate`",
            "compare three defences for configs (a block-list, a prefix allow-list, an exact "
            "identity-checked allow-list) and say what each one misses",
            "scan model files with `python -m labkit scan`, pin them by hash, and apply a short "
            "supply-chain checklist",
        ),
        minutes_half_day=25, minutes_full_day=30,
        exercises=("l6_allow_list", "l6_scan_allow", "l6_tampered"),
        questions=("How can loading a model file or a config run an attacker's code?", "Which defences stop which carriers?"),
        frameworks=("ML06", "LLM05:2023", "LLM03:2025", "LLM04:2026*", "AML.T0010", "AML.T0010.003", "AML.T0058", "AML.T0011.000", "AML.M0016", "AML.M0014", "AML.M0013", "AML.M0011", "AML.M0023")),
    Lesson(
        7, "language_models", "Poisoning language models",
        attack="trigger words in a text classifier (rare tokens, a natural phrase, clean labels); "
               "instruction-tuning poisoning of a tiny generator",
        defences="ONION (detector and input filter), keyword-label correlation, spectral signatures",
        objectives=(
            "plant a trigger-word backdoor in a text classifier (rare tokens, a natural phrase, clean "
            "labels) and measure it next to a control with the same budget",
            "show that the *number* of poisoned documents matters, not their share of the corpus",
            "poison the instruction tuning of a tiny text generator so that a trigger makes it write "
            "the attacker's answer, and report its task quality next to it",
            "use **ONION**, **keyword-label correlation** and a **spectral signature** against these "
            "attacks, and say which trigger each one misses",
        ),
        # made room for by taking 5 minutes from each of lessons 0-5's full-day allowances
        minutes_half_day=None, minutes_full_day=29,
        exercises=("l7_fewest_poisons", "l7_find_trigger", "l7_onion_blind_spot"),
        questions=("Can a few documents plant a backdoor in a language model, however large its corpus?", "Which text defences catch which triggers?"),
        frameworks=("ML02", "ML10", "LLM03:2023", "LLM04:2025", "LLM05:2026*", "AML.T0020", "AML.T0018.000", "AML.T0043.004", "AML.T0019", "AML.M0007", "AML.M0025")),
    Lesson(
        8, "rag_poisoning", "Poisoning what a RAG system retrieves",
        attack="passages written into a knowledge base (PoisonedRAG black-box, a retriever-aware white-box, "
               "split-view edits of reviewed passages)",
        defences="near-duplicate filtering, a signed knowledge base (provenance), isolate-then-aggregate "
                 "voting with a certificate",
        objectives=(
            "explain how a retrieval-augmented system answers (a retriever, a reader) and why whoever writes "
            "a retrieved passage speaks through it",
            "poison a knowledge base the PoisonedRAG way (the question plus a wrong answer) and measure the "
            "hijack rate next to random passages with the same budget",
            "use near-duplicate filtering, provenance (a signed knowledge base) and isolate-then-aggregate "
            "voting with a **certificate**, and say which poison each one misses",
        ),
        # made room for by taking 5 minutes from each of lessons 3-6's full-day allowances
        minutes_half_day=None, minutes_full_day=19,
        exercises=("l8_fewest_passages", "l8_smallest_window", "l8_split_view"),
        questions=("How can a few passages take over what a RAG system answers?", "What do deduplication, provenance and certified voting protect against?"),
        frameworks=("ML02", "LLM03:2023", "LLM04:2025", "LLM08:2025", "LLM05:2026*", "AML.T0070", "AML.T0019", "AML.M0025", "AML.M0007")),
    Lesson(
        9, "model_inspection", "A model you were handed",
        attack="a backdoored model handed over (patch and blend triggers), without its training data",
        defences="Neural Cleanse, NC unlearning, fine-pruning, clean fine-tuning, a population detector",
        objectives=(
            "inspect a model you were handed with only its weights and 200 clean rows: recover a "
            "trigger per class with **Neural Cleanse** and read its anomaly indices",
            "tell a real finding from a false alarm by inspecting a model you trust the same way",
            "repair a backdoored model by **unlearning** the recovered trigger, and measure attack "
            "success and clean accuracy before and after, also on rows the defender never saw",
            "say where each defence fails, with numbers: a large patch Neural Cleanse does not "
            "flag, fine-pruning a small network, and clean fine-tuning that leaves the backdoor in",
            "score a whole population of models with a **meta-classifier** trained on shadow models "
            "you built yourself, and read its AUROC on a trigger kind it never saw",
        ),
        # the full day had 20 minutes of catch-up left: lesson 9 takes them (slot = this + run time)
        minutes_half_day=None, minutes_full_day=19,
        exercises=("l9_which_class", "l9_which_repair", "l9_handed_models"),
        questions=("Can you tell whether a model you were handed carries a backdoor, without its training data?", "Can you repair it, and when does inspection fail?"),
        frameworks=("ML10", "ML06", "LLM05:2023", "LLM04:2025", "LLM05:2026*", "AML.T0018.000", "AML.T0043.004", "AML.T0010.003", "AML.T0058", "AML.M0008", "AML.M0014")),
)

# ---- the README's lesson table ---------------------------------------------------------

README_BEGIN = "<!-- lessons: generated from labkit/lessons/manifest.py by python instructor/make_lesson_table.py -->"
README_END = "<!-- end of lessons -->"


def readme_table(lessons=LESSONS) -> str:
    """The README's lesson table, markers included."""
    lines = [README_BEGIN, "", "| notebook | lesson | attack | defences | exercises |", "|---|---|---|---|---|"]
    lines += [f"| `{x.stem}` | {x.title} | {x.attack} | {x.defences} | {len(x.exercises)} |" for x in lessons]
    return "\n".join(lines + ["", README_END])


def update_readme(text: str) -> str:
    """``text`` (the README) with the lesson table between the markers regenerated."""
    if README_BEGIN not in text or README_END not in text:
        raise ValueError("README.md lacks the lesson-table markers")
    head, rest = text.split(README_BEGIN, 1)
    return head + readme_table() + rest.split(README_END, 1)[1]


# ---- each notebook's header -------------------------------------------------------------

HEADER_BEGIN = "<!-- header: generated from labkit/lessons/manifest.py by python instructor/make_notebook_headers.py -->"
HEADER_END = "<!-- end of header -->"


def _framework_line(ids) -> str:
    groups = {"OWASP ML Top 10 (2023)": [i for i in ids if i.startswith("ML")],
              "OWASP Top 10 for LLM Applications": [i for i in ids if i.startswith("LLM")],
              "MITRE ATLAS": [i for i in ids if i.startswith("AML.")]}
    parts = [f"{name}: {', '.join(i.replace('*', chr(92) + '*') for i in v)}" for name, v in groups.items() if v]
    note = " (\\*: from public crosswalks of the 2026 list)" if any(i.endswith("*") for i in ids) else ""
    return " · ".join(parts) + note if parts else "none: the vocabulary every later lesson uses"


def notebook_header(lesson: Lesson, seconds: Optional[float] = None, words=()) -> str:
    """The block at the end of a notebook's first cell: the questions the lesson answers, its
    time in the full-day workshop (allowance + measured run time ``seconds``), the framework
    entries it covers and the glossary ``words`` its text uses (linked to ``glossary.md``),
    between :data:`HEADER_BEGIN` and :data:`HEADER_END`."""
    from .glossary import anchor

    run = "" if seconds is None else f", of which running the notebook takes about {max(1, round(seconds))} s on one CPU"
    minutes = math.ceil(lesson.minutes_full_day + (seconds or 0) / 60)     # the agenda's slot
    lines = [HEADER_BEGIN, "", "**Questions this lesson answers.**", ""]
    lines += [f"- {q}" for q in lesson.questions]
    lines += ["", f"**Time.** About {minutes} minutes in the full-day workshop{run}.", "",
              f"**Frameworks.** {_framework_line(lesson.frameworks)} (what each id means, with its "
              "source: `instructor/frameworks.md`).", ""]
    if words:
        lines += ["**Words used here** (the [glossary](glossary.md) defines them): "
                  + ", ".join(f"[{w}](glossary.md#{anchor(w)})" for w in words) + ".", ""]
    lines.append(HEADER_END)
    return "\n".join(lines)


def update_header(cell_text: str, header: str) -> str:
    """``cell_text`` (a notebook's first cell) with its header block replaced, or appended."""
    if HEADER_BEGIN in cell_text and HEADER_END in cell_text:
        head, rest = cell_text.split(HEADER_BEGIN, 1)
        return head + header + rest.split(HEADER_END, 1)[1]
    return cell_text.rstrip("\n") + "\n\n" + header
