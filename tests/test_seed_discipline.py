"""Reporting seeds are read by ``python -m labkit reproduce`` alone.

Settings, defaults and test floors are chosen on development seeds
(:data:`labkit.claims.DEV_SEEDS`); the reporting seeds (:data:`labkit.claims.REPORTING_SEEDS`)
measure what the README and the notebooks state. A test, default, docstring or notebook
that names a reporting seed would let them leak into design, so any line of code or prose
outside ``labkit/claims.py`` and the ``reproduce`` command that mentions a seed next to a
reporting seed's number fails here.
"""

import json
import re
from pathlib import Path

from labkit import claims

ROOT = Path(__file__).resolve().parents[1]
#: Where reporting seeds belong: their definition and the command that reads them.
ALLOWED = {"labkit/claims.py", "labkit/cli/reproduce.py"}
NUMBERS = "|".join(str(s) for s in claims.REPORTING_SEEDS)
#: a seed named on a line together with a reporting seed's number: an assignment, a tuple of
#: seeds, a ``--seeds`` option, a range quoted in prose, an offset added to a seed
LEAK = re.compile(rf"seed.*(?<![\w.])({NUMBERS})(?![\w.]?\d)|(?<![\w.])({NUMBERS})(?![\w.]?\d).*seed",
                  re.IGNORECASE)


def leaks(text: str) -> list[str]:
    """The lines of ``text`` that name a reporting seed."""
    return [line.strip() for line in text.splitlines() if LEAK.search(line)]


def _sources():
    for path in sorted([*ROOT.glob("labkit/**/*.py"), *ROOT.glob("tests/*.py"),
                        *ROOT.glob("instructor/*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel not in ALLOWED:
            yield rel, path.read_text()
    for path in sorted(ROOT.glob("notebooks/*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        yield path.relative_to(ROOT).as_posix(), "\n".join("".join(c["source"]) for c in cells)


def test_the_rule_catches_what_it_should():
    # the leaks are built from the definition, so this file names no reporting seed either
    first, *_, last = claims.REPORTING_SEEDS
    planted = f'''
    r = lk.run("backdoor", seed={first})
    SEEDS = {claims.REPORTING_SEEDS[:3]}
    main(["reproduce", "--seeds", "{claims.REPORTING_SEEDS[5]}"])
    """Floors measured on reporting seeds {first}-{claims.REPORTING_SEEDS[4]}."""
    model = train(data, seed=seed + {last})
    '''
    assert len(leaks(planted)) == 5
    fine = '''
    r = lk.run("backdoor", seed=0, rate=0.05)
    SEEDS = (0, 1, 2)
    clf = FastICA(k, random_state=seed, max_iter=1000)
    x = np.arange(100.0)  # no seed here
    seeds = claims.REPORTING_SEEDS
    '''
    assert leaks(fine) == []


def test_no_test_default_docstring_or_notebook_names_a_reporting_seed():
    found = {rel: bad for rel, text in _sources() if (bad := leaks(text))}
    assert found == {}


def test_no_function_defaults_to_a_reporting_seed():
    import importlib
    import inspect
    import pkgutil

    import labkit

    assert not set(claims.DEV_SEEDS) & set(claims.REPORTING_SEEDS)
    bad, checked = [], 0
    for info in pkgutil.walk_packages(labkit.__path__, "labkit."):
        module = importlib.import_module(info.name)
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ != info.name:
                continue
            for p in inspect.signature(fn).parameters.values():
                if "seed" in p.name.lower() and p.default is not inspect.Parameter.empty:
                    checked += 1
                    values = p.default if isinstance(p.default, (tuple, list)) else (p.default,)
                    if set(values) & set(claims.REPORTING_SEEDS):
                        bad.append(f"{info.name}.{name}({p.name}={p.default!r})")
    assert checked >= 10 and bad == []
