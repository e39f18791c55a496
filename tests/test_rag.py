"""Lesson 8: the RAG pipeline, knowledge-base poisoning and its defences.

Floors are asserted on development seeds only; the lesson's stated numbers come from
``python -m labkit reproduce`` (benchmarks/RESULTS.md)."""
import numpy as np
import pytest

import labkit as lk
from labkit.attacks.rag_poison import inject_passages
from labkit.defences.provenance import ManifestError, create_manifest
from labkit.defences.rag import near_duplicates, signed_passages
from labkit.rag import RagPipeline, certified_radius, rag_pipeline, rag_task
from labkit.types import Dataset

SEEDS = range(5)


@pytest.fixture(scope="module")
def split():
    return lk.data.pydoc_rag(seed=0)


def test_questions_quote_paragraphs_outside_the_knowledge_base(split):
    passages, _ = rag_task()
    held_out = lk.data.split(passages, rng=0).test.flat() > 0          # the paragraphs not in the base
    Q = split.test.flat() > 0
    inside = (Q.astype(int) @ held_out.T.astype(int)) == Q.sum(1, keepdims=True)
    assert inside.any(1).all()                # every question's words lie in a held-out paragraph: its own
    assert len(split.train) + len(split.test) == len(passages)


def test_a_question_retrieves_its_own_paragraph_when_it_is_there():
    passages, questions = rag_task()
    top = RagPipeline(passages, top_k=5).retrieve(questions.X)
    # compare the text, not the row number: a paragraph may occur twice
    found = (passages.X[top] == passages.X[:, None]).reshape(len(top), 5, -1).all(2)
    assert found.any(1).mean() >= 0.99 and found[:, 0].mean() >= 0.95


def test_the_reader_votes_and_breaks_ties_by_rank():
    V = len(lk.text.vocabulary())
    X = np.zeros((4, 1, 1, V), np.float32)
    X[:, 0, 0, 0] = 1.0                              # every passage holds word 0
    X[0, 0, 0, 1] = X[1, 0, 0, 1] = 1.0              # passages 0 and 1 also hold word 1
    kb = Dataset(X, np.array([2, 3, 3, 2]), 5, "kb")
    q = np.zeros((1, 1, 1, V), np.float32)
    q[0, 0, 0, :2] = 1.0
    assert RagPipeline(kb, top_k=3).predict(q)[0] == 3          # 3 has two votes of three
    assert RagPipeline(kb, top_k=2).predict(q)[0] == 2          # a tie: the better-ranked passage's title


def test_certified_radius_counts_the_lead_over_the_runner_up():
    counts = np.array([[5, 0, 0], [3, 2, 0], [4, 1, 0], [7, 2, 1], [2, 2, 1]])
    assert certified_radius(counts).tolist() == [2, 0, 1, 2, 0]


@pytest.mark.parametrize("style", ["blackbox", "whitebox"])
def test_no_insertion_within_the_certificate_changes_an_answer(split, style):
    """For every question whose answer is certified to survive r >= 1 insertions, the
    attacker's r best passages (written for that question, any wrong title) leave it alone."""
    kb, test = split
    for top_k in (5, 15):
        rag = rag_pipeline(kb, top_k=top_k)
        answers, radius = rag.certify(test.X)
        checked = 0
        for q in np.flatnonzero(radius >= 1)[:25]:
            for r in range(1, radius[q] + 1):
                p = inject_passages(kb, test=test.subset([q]), n_targets=1, per_question=int(r), style=style, rng=int(q))
                assert rag_pipeline(p, top_k=top_k).predict(test.X[[q]])[0] == answers[q]
                checked += 1
        assert checked >= 10
        # and one passage more than the certificate does change some answers: it is not vacuous
        q = np.flatnonzero(radius == 0)[:10]
        flipped = [rag_pipeline(inject_passages(kb, test=test.subset([i]), n_targets=1, per_question=1,
                                                style=style, rng=int(i)), top_k=top_k).predict(test.X[[i]])[0] != answers[i]
                   for i in q]
        assert any(flipped)


@pytest.mark.parametrize("seed", SEEDS)
def test_five_passages_hijack_targets_and_leave_other_questions(seed):
    r = lk.run("rag_poison", seed=seed)
    assert r.attack_success >= 0.9
    assert r.control_success <= 0.05
    assert abs(r.extra["accuracy_untargeted"] - r.extra["accuracy_untargeted_no_attack"]) <= 0.02


@pytest.mark.parametrize("style", ["blackbox", "whitebox", "split_view"])
def test_provenance_catches_every_inserted_or_edited_passage(style):
    for seed in (0, 1):
        r = lk.run("rag_poison", seed=seed, defence="signed_passages", params={"style": style})
        assert r.detection["recall"] == 1.0 and r.detection["precision"] == 1.0
        assert r.attack_success_defended == 0.0
        if style != "split_view":       # inserted passages go, the reviewed base is what is left
            assert r.clean_accuracy_defended == pytest.approx(r.clean_accuracy_no_attack)


def test_a_manifest_signed_with_another_key_is_refused(split):
    kb = split.train
    manifest = create_manifest(kb, key=b"the reviewer's own key", source="tests", created="2026-01-01")
    with pytest.raises(ManifestError):
        signed_passages(kb.flat(), kb.y, n_classes=kb.n_classes, manifest=manifest, key=b"somebody else's key")


def test_near_duplicate_filtering_is_evaded_by_the_retriever_aware_attack(split):
    """Black-box poisons of one question repeat each other; the white-box ones are written
    not to, so the filter finds fewer of them (recall with ground truth, evaluation only)."""
    kb, test = split
    recall = {}
    for style in ("blackbox", "whitebox"):
        found = []
        for seed in range(3):
            p = inject_passages(kb, test=test, style=style, rng=seed)
            found.append(near_duplicates(p.flat(), p.y).flagged[p.poison_idx].mean())
        recall[style] = np.mean(found)
    assert recall["blackbox"] >= 0.5 and recall["whitebox"] <= recall["blackbox"] - 0.2


def test_wider_retrieval_lowers_hijacking_and_reports_the_targets_certificates():
    r = lk.run("rag_poison", seed=0, defence="robust_rag")
    assert r.attack_success_defended < r.attack_success
    radii = r.extra["certified_radius_targets"]
    assert len(radii) == r.params["n_targets"] and all(x >= 0 for x in radii)
    ca = r.extra["certified_accuracy"]
    assert ca[0] >= ca[1] >= ca[2]


def test_bad_settings_are_refused(split):
    kb, test = split
    with pytest.raises(ValueError, match="style"):
        inject_passages(kb, test=test, style="greybox")
    with pytest.raises(ValueError, match="n_targets"):
        inject_passages(kb, test=test, n_targets=len(test) + 1)
    with pytest.raises(ValueError, match="top_k"):
        RagPipeline(kb, top_k=0)
    with pytest.raises(ValueError, match="bag-of-words"):
        inject_passages(lk.data.digits(seed=0).train, test=test)
