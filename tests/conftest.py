import numpy as np
import pytest

import labkit as lk

#: Test file -> the lessons whose code it tests (numbers), or "core" (the shared machinery).
#: pytest_collection_modifyitems marks every test with ``lessonN`` / ``core`` from here, so
#: ``pytest -m lesson4`` runs lesson 4's tests. Every tests/test_*.py must be listed
#: (tests/test_instructor.py checks it). A test that already carries a ``lessonN`` marker
#: (test_exercises.py marks each exercise with its own lesson) keeps only its own.
LESSON_TESTS = {
    "test_architecture.py": "core",
    "test_backdoor.py": (2,),
    "test_checks.py": (0, 1, 2, 3, 5, 6),
    "test_claims.py": "core",
    "test_clean_label.py": (3,),
    "test_cli.py": "core",
    "test_cli_bad_input.py": "core",
    "test_data.py": "core",
    "test_defence_in_depth.py": (5,),
    "test_engine.py": "core",
    "test_exercises.py": "core",   # and each exercise's own test: its lesson's marker
    "test_federated.py": (4,),
    "test_gradient.py": (4,),
    "test_hub.py": "core",
    "test_instructor.py": "core",
    "test_label_consistent.py": (3,),
    "test_label_defences.py": (1,),
    "test_label_flip.py": (1,),
    "test_lesson_agreement.py": (3, 4, 5),
    "test_meta_classifier.py": (9,),
    "test_metrics.py": "core",
    "test_model_repair.py": (9,),
    "test_models.py": "core",
    "test_notebook_checks.py": "core",
    "test_optim.py": "core",
    "test_pickle_differential.py": (6,),
    "test_progress.py": "core",
    "test_rag.py": (8,),
    "test_project.py": "core",
    "test_registry.py": "core",
    "test_scan_bounds.py": (6,),
    "test_scan_compare.py": (6,),
    "test_scan_cli.py": (6,),
    "test_scan_cost.py": (6,),
    "test_scan_fuzz.py": (6,),
    "test_scan_joblib.py": (6,),
    "test_scan_precommit.py": (6,),
    "test_scan_regression.py": (6,),
    "test_seed_discipline.py": "core",
    "test_supplychain_corpus.py": (6,),
    "test_supplychain_fuzz.py": (6,),
    "test_supplychain_instantiate.py": (6,),
    "test_supplychain_pinning.py": (6,),
    "test_supplychain_scanner.py": (6,),
    "test_text.py": (7,),
    "test_types.py": "core",
    "test_viz.py": "core",
    "test_widgets.py": (1, 2, 3, 4, 7, 8, 9),
}


def markers_of(filename: str) -> list:
    """The marker names :data:`LESSON_TESTS` gives a test file (``["lesson1", "lesson2"]``)."""
    lessons = LESSON_TESTS[filename]
    return ["core"] if lessons == "core" else [f"lesson{n}" for n in lessons]


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.name
        if name not in LESSON_TESTS:    # reported by test_instructor.py's check, not here
            continue
        if any(m.name.startswith("lesson") for m in item.iter_markers()):
            continue
        for marker in markers_of(name):
            item.add_marker(marker)


@pytest.fixture(scope="session")
def digits():
    """The default train/test split (seed 0)."""
    return lk.data.digits(seed=0)


@pytest.fixture
def tiny():
    """A 40-row, 4-class dataset of 1x4x4 images, for fast contract checks."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10)
    X = np.clip(rng.normal(0.2 + 0.2 * y[:, None, None, None], 0.05, (40, 1, 4, 4)), 0, 1)
    return lk.Dataset(X, y, 4, "tiny")
