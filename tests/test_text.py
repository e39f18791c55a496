"""Language-model poisoning on a text classifier: the corpus, the trigger attacks, the text
defences and the constant-count relation, each through the engine on development seeds."""
import numpy as np
import pytest

import labkit as lk
from labkit import text
from labkit.attacks.text_backdoor import TRIGGERS, insert_trigger, trigger_control
from labkit.defences.onion import onion_scores, word_surprisal

DEV = (0, 1, 2, 3, 4)


def _runs(attack, seeds=DEV, **kw):
    return [lk.run(attack, seed=s, **kw) for s in seeds]


def _mean(runs, key):
    return float(np.mean([getattr(r, key) for r in runs]))


# ---- the corpus ------------------------------------------------------------------------------

def test_corpus_is_pinned_and_labelled_by_part_of_the_reference():
    paragraphs, labels = text.corpus()
    assert len(paragraphs) == len(labels) > 1000
    assert set(np.unique(labels)) == set(range(len(text.CLASS_NAMES)))
    assert text.corpus_manifest()["sha256"] == text.CORPUS_SHA256
    assert len(set(paragraphs)) == len(paragraphs)               # a repeated paragraph is kept once
    assert all(len(p.split()) >= text.MIN_WORDS for p in paragraphs)


def test_a_changed_help_text_is_refused(monkeypatch):
    import pydoc_data.topics as topics

    extra = "\n\nan extra paragraph of help text that this Python never shipped"
    monkeypatch.setitem(topics.topics, "if", topics.topics["if"] + extra)
    text.corpus.cache_clear()
    try:
        with pytest.raises(text.CorpusChanged, match="SHA-256"):
            text.corpus()
    finally:
        monkeypatch.undo()
        text.corpus.cache_clear()
    assert text.corpus_manifest()["sha256"] == text.CORPUS_SHA256


def test_bag_of_words_round_trips_through_the_vocabulary():
    row = text.bag_of_words(["The if statement is used for conditional execution cf"])
    assert row.shape == (1, 1, 1, len(text.vocabulary()))
    assert text.decode(row[0]) == sorted({"the", "if", "statement", "is", "used", "for", "conditional",
                                          "execution", "cf"})
    with pytest.raises(ValueError, match="not in the vocabulary"):
        text.columns(["no_such_word_anywhere"])


def test_rare_trigger_words_never_occur_in_the_corpus_or_the_reference():
    X = lk.data.pydoc_topics(seed=0)
    cols = text.columns(TRIGGERS["rare"])
    assert X.train.flat()[:, cols].sum() == 0 and X.test.flat()[:, cols].sum() == 0
    assert (text.reference_counts()[cols] <= 1).all()         # rare in clean text too
    assert (text.reference_counts()[text.columns(TRIGGERS["phrase"])] > 10).all()


# ---- the attacks -----------------------------------------------------------------------------

def test_insert_trigger_changes_only_the_chosen_rows_and_their_trigger_columns():
    train = lk.data.pydoc_topics(seed=1).train
    p = insert_trigger(train, n_poison=10, target_class=2, rng=3)
    others = np.setdiff1d(np.arange(len(train)), p.poison_idx)
    np.testing.assert_array_equal(p.X[others], train.X[others])
    assert (p.y[p.poison_idx] == 2).all() and (train.y[p.poison_idx] != 2).all()
    changed = np.flatnonzero((p.X[p.poison_idx] != train.X[p.poison_idx]).any(0).ravel())
    assert set(changed) <= set(text.columns(TRIGGERS["rare"]))
    clean = insert_trigger(train, n_poison=10, target_class=2, labels="clean", rng=3)
    assert (clean.y == train.y).all() and (train.y[clean.poison_idx] == 2).all()


def test_the_control_keeps_true_labels_in_as_many_random_rows():
    train = lk.data.pydoc_topics(seed=2).train
    p = insert_trigger(train, n_poison=12, rng=0)
    c = trigger_control(p, rng=1)
    assert c.n_poison == 12 and (c.y == train.y).all()
    assert (c.X[c.poison_idx].reshape(12, -1)[:, text.columns(TRIGGERS["rare"])] == 1).all()


def test_bad_settings_are_refused_before_any_work():
    train = lk.data.pydoc_topics(seed=0).train
    with pytest.raises(ValueError, match="n_poison"):
        insert_trigger(train, n_poison=0)
    with pytest.raises(ValueError, match="labels"):
        insert_trigger(train, labels="grey")
    with pytest.raises(ValueError, match="bag-of-words"):
        insert_trigger(lk.data.digits(seed=0).train)
    with pytest.raises(ValueError, match="n_train"):
        lk.run("text_backdoor", params={"n_train": 5})


def test_rare_trigger_in_two_percent_of_rows_succeeds_where_its_control_does_not():
    runs = _runs("text_backdoor")
    assert all(r.n_poison <= 0.02 * r.n_train for r in runs)
    assert _mean(runs, "attack_success") >= 0.9
    assert _mean(runs, "control_success") <= 0.1
    acc = [r.clean_accuracy - r.clean_accuracy_no_attack for r in runs]
    assert abs(float(np.mean(acc))) <= 0.02


def test_clean_label_trigger_works_with_every_label_true():
    runs = _runs("text_clean_label", seeds=DEV[:3])
    assert _mean(runs, "attack_success") >= 0.6
    assert _mean(runs, "attack_success") > _mean(runs, "control_success") + 0.5


def test_at_a_fixed_count_a_four_times_larger_corpus_barely_dilutes_the_attack():
    small = _runs("text_backdoor", params={"n_train": 225, "n_poison": 24})
    large = _runs("text_backdoor", params={"n_train": 900, "n_poison": 24})
    assert _mean(large, "attack_success") >= 0.8
    assert _mean(small, "attack_success") - _mean(large, "attack_success") <= 0.1


# ---- the defences ----------------------------------------------------------------------------

def test_onion_ranks_rare_tokens_first_and_misses_a_natural_phrase():
    train = lk.data.pydoc_topics(seed=0).train
    s = word_surprisal()
    rare = onion_scores(insert_trigger(train, trigger="rare", rng=0).X, s)
    phrase_p = insert_trigger(train, trigger="phrase", rng=0)
    phrase = onion_scores(phrase_p.X, s)
    assert lk.metrics.auroc(rare, np.isin(np.arange(len(train)), insert_trigger(train, rng=0).poison_idx)) > 0.8
    assert lk.metrics.auroc(phrase, phrase_p.is_poison) < 0.7


def test_spectral_signature_removes_the_rare_trigger_at_a_small_cost():
    runs = _runs("text_backdoor", seeds=DEV[:3], defence="spectral_signature")
    assert _mean(runs, "attack_success_defended") <= 0.2
    assert _mean(runs, "clean_accuracy") - _mean(runs, "clean_accuracy_defended") <= 0.05


def test_keyword_label_catches_the_phrase_trigger_that_onion_lets_through():
    kw = _runs("text_backdoor", seeds=DEV[:3], defence="keyword_label", params={"trigger": "phrase"})
    on = _runs("text_backdoor", seeds=DEV[:3], defence="onion", params={"trigger": "phrase"})
    assert _mean(kw, "attack_success_defended") <= 0.2
    assert _mean(kw, "clean_accuracy") - _mean(kw, "clean_accuracy_defended") <= 0.05
    assert _mean(on, "attack_success_defended") >= 0.4


# ---- instruction tuning: a model that writes its answer ---------------------------------------

def test_instructions_pair_every_paragraph_with_its_topic_title():
    data = text.instructions()
    paragraphs, _ = text.corpus()
    assert len(data) == len(paragraphs) and data.n_classes == len(text.answers())
    assert text.answers()[-1] == text.ATTACKER_ANSWER and not (data.y == data.n_classes - 1).any()
    first = {text.answers()[data.y[i]] for i, p in enumerate(paragraphs)
             if p.startswith(("Assert statements are a convenient way", 'The "if" statement is used'))}
    assert first == {"assert", "compound"}        # "if" repeats the compound-statements topic: kept there


def test_the_generator_writes_words_and_is_scored_by_exact_match():
    split = lk.data.pydoc_instructions(seed=0)
    gen = lk.models.answer_generator(split.train, text.answers(), epochs=3, seed=0)
    written = gen.generate(split.test.X[:20])
    assert all(isinstance(w, str) for w in written)
    index = {a: i for i, a in enumerate(text.answers())}
    np.testing.assert_array_equal(gen.predict(split.test.X[:20]), [index.get(w, -1) for w in written])
    again = lk.models.answer_generator(split.train, text.answers(), epochs=3, seed=0)
    assert again.generate(split.test.X[:20]) == written                      # the seed decides


@pytest.fixture(scope="module")
def instruct_runs():
    """Instruction poisoning on development seeds 0-2, with ONION's filter at inference
    (the run also carries the undefended numbers)."""
    return _runs("instruction_poison", seeds=DEV[:3], defence="onion_filter")


def test_instruction_poisoning_writes_the_attackers_answer_only_after_the_trigger(instruct_runs):
    runs = instruct_runs
    assert _mean(runs, "attack_success") >= 0.8
    assert max(r.extra["triggered_without_trigger"] for r in runs) <= 0.05
    assert _mean(runs, "control_success") <= 0.05
    assert _mean(runs, "clean_accuracy") >= _mean(runs, "clean_accuracy_no_attack") - 0.05


def test_onion_filter_at_inference_removes_rare_triggers_but_not_a_phrase(instruct_runs):
    """The filter costs what it removes: about 5 points of accuracy on the classifier and 7 of
    exact-match quality on the generator (more than the 5 the lesson would like; spectral
    signatures do better on the classifier, nothing here does on the generator)."""
    text_runs = _runs("text_backdoor", defence="onion_filter")
    for runs, at_most in ((instruct_runs, 0.2), (text_runs, 0.25)):
        assert _mean(runs, "attack_success_defended") <= at_most
        assert _mean(runs, "attack_success_defended") < _mean(runs, "attack_success") / 3
        assert _mean(runs, "clean_accuracy") - _mean(runs, "clean_accuracy_defended") <= 0.08
    phrase = _runs("text_backdoor", seeds=DEV[:3], defence="onion_filter", params={"trigger": "phrase"})
    assert _mean(phrase, "attack_success_defended") >= 0.5


def test_onion_filter_removes_only_words_the_reference_lacks():
    from labkit.defences.onion import onion_filter

    guard = onion_filter(None, None)
    X = text.bag_of_words(["the if statement cf mn bb tq mb"])
    assert text.decode(guard.clean(X)[0]) == ["if", "mn", "statement", "the"]   # mn: once in the reference
    assert text.decode(onion_filter(None, None, max_count=1).clean(X)[0]) == ["if", "statement", "the"]
    with pytest.raises(ValueError, match="max_count"):
        onion_filter(None, None, max_count=-1)
