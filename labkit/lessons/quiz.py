"""Five recall questions per lesson, answered in the notebook with ``lk.widgets.quiz(N)``.

A quiz is for the learner alone: it checks itself, explains each answer, and gives no
completion code (those are for the exercises). This module imports nothing but the standard
library.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Question", "QUIZZES", "grade"]


@dataclass(frozen=True)
class Question:
    """One multiple-choice question: ``options[answer]`` is right; ``why`` explains it."""

    text: str
    options: tuple
    answer: int
    why: str


Q = Question

#: Lesson number -> its five questions.
QUIZZES: dict = {
    0: (
        Q("A model's clean accuracy is the same before and after an attack. What can you conclude?",
          ("The attack failed", "Nothing yet: measure attack success too", "The model was never trained"), 1,
          "Integrity attacks (backdoors, targeted poisons) are built to leave clean accuracy unchanged."),
        Q("What does an AUROC of 0.5 mean for a detector's scores?",
          ("They rank poisons no better than guessing", "Half the poisons were found", "The detector is perfect"), 0,
          "AUROC is the chance that a random poison scores above a random clean row: 0.5 is a coin toss."),
        Q("Which is part of a threat model?",
          ("The colour scheme of the plots", "What the attacker knows and controls", "The learner's seed"), 1,
          "A threat model states what the attacker knows, controls and wants, and what the defender holds."),
        Q("Why do notebooks use one seed while full-scale numbers use ten others?",
          ("To run fast and still report numbers that do not depend on one lucky draw",
           "Because the seeds give different models on purpose", "Ten seeds are required by Jupyter"), 0,
          "A worked example runs in a minute; the full-scale results repeat it on draws no setting was tuned on."),
        Q("Of the rows a defence flags, 8 are poisons and 2 are clean. What is its precision?",
          ("0.2", "0.8", "It depends on the number of poisons"), 1,
          "Precision is the share of flagged rows that are poisons: 8 of 10."),
    ),
    1: (
        Q("Which flips hurt a model most for the same budget?",
          ("Random flips", "Flips chosen by an optimising or class-pair attack", "Flips of already wrong labels"), 1,
          "Flips aimed at the classes and rows that matter most do more damage than random ones."),
        Q("What does k-NN label sanitisation look at?",
          ("Whether a row's neighbours agree on a different label", "The model's gradients", "File hashes"), 0,
          "A row whose nearest neighbours mostly carry another label is relabelled (or dropped)."),
        Q("What does Deep Partition Aggregation's certificate promise?",
          ("That the model is 100% accurate",
           "That a prediction cannot change if at most r training rows are changed",
           "That no poison is in the data"), 1,
          "Each row touches one partition, so r changed rows change at most r votes."),
        Q("What does DPA cost?",
          ("Nothing", "Clean accuracy: every model sees only part of the data", "A GPU"), 1,
          "Models trained on small partitions are weaker; more partitions give larger certificates and lower accuracy."),
        Q("Confident learning flags a row when...",
          ("its cross-validated probability for its own label is unusually low", "it is the largest image",
           "its file is unsigned"), 0,
          "It uses out-of-sample predictions to find labels the data itself contradicts."),
    ),
    2: (
        Q("What does a backdoored model do on clean inputs?",
          ("Fails visibly", "Behaves like a clean model", "Refuses to answer"), 1,
          "That is what makes backdoors dangerous: only triggered inputs reveal them."),
        Q("Where do activation clustering and spectral signatures look for poisons?",
          ("In the raw pixels", "In the model's penultimate activations", "In the loss curve"), 1,
          "Poisons of one class form their own group or direction in the features the last layer reads."),
        Q("STRIP flags an input at inference when...",
          ("its prediction stays confident when mixed with other images", "it is blurry", "it is new"), 0,
          "A trigger dominates the prediction, so mixing in other images barely changes it: low entropy."),
        Q("Why is whitening used before scoring a class's features?",
          ("To make the plots brighter",
           "So that directions in which every class naturally varies do not hide the poisons' shift",
           "To remove the trigger"), 1,
          "Rescaling by the typical spread makes a small but unusual shift stand out."),
        Q("When do activation clustering's assumptions break?",
          ("When poisons are not a minority of their class", "When the model is small", "Never"), 0,
          "It looks for a small, well separated cluster; poisons that are half their class are not small."),
    ),
    3: (
        Q("What makes a poison clean-label?",
          ("It has no label", "Its label is correct, so a label audit finds nothing", "It was cleaned by a defence"), 1,
          "The poisons are barely changed images that still carry their true labels."),
        Q("When do feature-collision attacks work best?",
          ("When the victim keeps a feature extractor the attacker knows (transfer learning)",
           "When the victim retrains everything from scratch", "Only on text"), 0,
          "The attacker optimises in the frozen extractor's feature space, which end-to-end retraining changes."),
        Q("Why compare with a random perturbation of the same size?",
          ("To show that the attack's design, not any noise of that size, does the work", "To slow the attack",
           "It is required by the licence"), 0,
          "A same-budget control separates the crafted effect from what any change would do."),
        Q("What does deep k-NN check?",
          ("Whether a row's label disagrees with most of its neighbours in feature space", "The file size",
           "The learning rate"), 0,
          "Poisons sit among the target class in feature space while carrying another label."),
        Q("How is it checked that poisons still look like their label?",
          ("By classifiers the attacker never optimised against, fitted on data the attacker never touched",
           "By the attacker's own model", "By asking the attacker"), 0,
          "Independent checkers avoid the attacker grading their own homework."),
    ),
    4: (
        Q("What does gradient matching need the victim to do?",
          ("Take gradient steps on the poisons, e.g. fine-tune on a new batch", "Nothing at all",
           "Download a model file"), 0,
          "The poisons work through the gradients they produce during training."),
        Q("What does DP-SGD do to each example's gradient?",
          ("Clips it and adds noise", "Doubles it", "Removes it"), 0,
          "Clipping bounds any one example's influence; noise hides what remains."),
        Q("Which aggregation rule can a single malicious client move arbitrarily far?",
          ("The coordinate-wise median", "The plain mean", "Krum"), 1,
          "The mean's breakdown point is zero: one large update moves it as far as the attacker likes."),
        Q("What is a breakdown point?",
          ("The largest share of bad inputs a statistic tolerates before it can be moved arbitrarily",
           "The epoch where training stops", "The point where accuracy is zero"), 0,
          "The median's is one half, the mean's zero."),
        Q("Why does \"a little is enough\" evade robust aggregation?",
          ("Its updates stay within the spread of honest ones, shifted a little in a chosen direction",
           "It sends no updates", "It uses a different model"), 0,
          "Updates that look ordinary are kept by rules that drop outliers."),
    ),
    5: (
        Q("What does a signed data manifest let you detect?",
          ("Rows added, removed or changed since it was signed", "Whether the model is accurate",
           "Every backdoor"), 0,
          "Row digests under a signature name exactly the rows that differ from the reviewed copy."),
        Q("Why combine several defences?",
          ("Each one misses some attack families that another catches", "To make training slower",
           "Because one defence always suffices"), 0,
          "Audits, provenance, robust training and monitoring fail in different places."),
        Q("What does monitoring compare?",
          ("Each release's behaviour with the last trusted one", "The colour of the plots", "Nothing"), 0,
          "Shifts in predictions between releases (e.g. PSI) can reveal a poisoned release."),
        Q("Why score the capstone without ground truth at hand?",
          ("A real defender never has it", "It is faster", "Ground truth is wrong"), 0,
          "Defenders see only the data, never which rows are poisons or how many."),
        Q("What should happen when an alarm goes off?",
          ("A named person reviews it, following an agreed process", "Nothing", "Delete the model"), 0,
          "People and process decide whether an alarm stops a release."),
    ),
    6: (
        Q("Why can loading a pickle-based checkpoint run code?",
          ("Unpickling may call any function the file names", "Pickles are encrypted", "It cannot"), 0,
          "A pickle is a small program for rebuilding objects; it can call arbitrary callables."),
        Q("A load raises an error. Is the machine safe?",
          ("Yes, nothing ran", "Not necessarily: code may have run before the error", "Only on Linux"), 1,
          "The payload runs while loading; the error may come afterwards."),
        Q("Which config defence is strongest?",
          ("A block-list of bad names", "An exact, identity-checked allow-list", "A prefix allow-list"), 1,
          "Block-lists miss what they did not name; prefix lists let whole modules through."),
        Q("What does hash pinning protect?",
          ("That a file is byte for byte the one you reviewed", "That the file is free of bugs",
           "That the model is accurate"), 0,
          "A pinned digest detects any change to the file."),
        Q("Does `labkit scan` import or unpickle the files it checks?",
          ("Yes", "No: it reads bytes and models the pickle stack", "Only safetensors"), 1,
          "A scanner that loads a file would run its payload."),
    ),
    7: (
        Q("Why does a rare-token trigger work with very few poisoned paragraphs?",
          ("Each trigger word perfectly predicts the attacker's label in the training data",
           "Rare words are longer", "The model ignores rare words"), 0,
          "A perfect predictor gets a large weight, however few rows carry it."),
        Q("What did the constant-count experiment show?",
          ("The number of poisoned documents matters, not their share of the corpus",
           "Larger corpora dilute any attack", "Only the share matters"), 0,
          "Four times more clean text barely changed the success of a fixed number of poisons."),
        Q("Which trigger defeats ONION?",
          ("A natural phrase made of common words", "Rare tokens", "No trigger"), 0,
          "ONION removes surprising words; everyday words are not surprising."),
        Q("What does the same-budget control put in the training set?",
          ("The trigger in random paragraphs that keep their true labels", "Nothing", "Only clean text"), 0,
          "It shows that the attacker's labels, not the odd words, teach the shortcut."),
        Q("What does the ONION filter cost at inference?",
          ("Some clean quality: useful rare words are removed too", "Nothing", "The whole model"), 0,
          "Every input loses the words the reference text lacks, including harmless ones."),
    ),
    8: (
        Q("Why does a passage that repeats the question get retrieved?",
          ("It is more similar to the question than any honest passage", "It is newer", "It is longer"), 0,
          "The retriever ranks by similarity to the question."),
        Q("What does the reader do with the retrieved passages?",
          ("Believes them: it answers with what most of them say", "Checks them against the web",
           "Ignores them"), 0,
          "Like a language model given context, it trusts what it reads."),
        Q("Which defence stops passages edited after review (split view)?",
          ("Near-duplicate filtering", "A signed knowledge base", "Reading more passages"), 1,
          "An edited passage no longer matches the digest that was signed."),
        Q("Why does near-duplicate filtering fail against the white-box attacker?",
          ("Its passages are written not to repeat each other", "It uses images", "It is never retrieved"), 0,
          "A filter for repetition cannot see poisons that do not repeat."),
        Q("What does the voting reader's certificate state for an answer?",
          ("How many inserted passages it provably survives", "That the answer is right",
           "That no poison exists"), 0,
          "One inserted passage changes at most one vote; a large lead survives several."),
    ),
    9: (
        Q("What does Neural Cleanse look for in each class?",
          ("An unusually small trigger that sends inputs to it", "The largest weights", "Mislabelled rows"), 0,
          "A backdoor is a shortcut: the attacker's class needs a much smaller change than the others."),
        Q("Neural Cleanse flags a class. What should you check first?",
          ("Whether a model you trust gets the same flag", "Nothing, delete the model", "The file size"), 0,
          "Some classes are naturally cheap to reach; a flag shared with a clean model is a false alarm."),
        Q("Which repair removed the backdoor in the lesson?",
          ("Unlearning the recovered trigger", "Fine-pruning", "Plain clean fine-tuning"), 0,
          "Only the repair that shows the model the trigger, with true labels, removes the shortcut."),
        Q("Why does fine-tuning on clean data leave the backdoor in?",
          ("The clean rows never contain the trigger", "Fine-tuning is too fast", "The model is frozen"), 0,
          "Nothing in the clean data asks the model to change what the trigger does."),
        Q("What does a population detector (meta-classifier) learn from?",
          ("Shadow models the defender trains, clean and backdoored", "The attacker's code",
           "The training data of the handed model"), 0,
          "It learns what backdoored models behave like, for the attacks the defender imagined."),
    ),
}


def grade(lesson: int, choices) -> tuple:
    """``(n_right, lines)`` for the chosen option indices (None: not answered): one feedback
    line per question."""
    questions = QUIZZES[lesson]
    if len(choices) != len(questions):
        raise ValueError(f"lesson {lesson}'s quiz has {len(questions)} questions, got {len(choices)} answers")
    right, lines = 0, []
    for i, (q, c) in enumerate(zip(questions, choices), 1):
        if c is None:
            lines.append(f"{i}. not answered yet.")
        elif c == q.answer:
            right += 1
            lines.append(f"{i}. right: {q.why}")
        else:
            lines.append(f"{i}. not this one: reread that part of the lesson and try again.")
    return right, lines
