"""A completion code: the short proof that a learner solved an exercise (see :mod:`labkit.progress`).

The code is the first 50 bits (10 base32 characters) of HMAC-SHA256(key, learner + exercise).
:func:`announce` prints it when a workshop key is configured (``LAB_WORKSHOP_KEY``), and
nothing otherwise. Standard library only.
"""
from __future__ import annotations

import base64
import getpass
import hashlib
import hmac
import os

__all__ = ["completion_code", "announce", "KEY_ENV", "LEARNER_ENV", "CODE_LENGTH"]

KEY_ENV = "LAB_WORKSHOP_KEY"
LEARNER_ENV = "LAB_LEARNER"
CODE_LENGTH = 10


def _key_bytes(key) -> bytes:
    if isinstance(key, bytes):
        raw = key
    else:
        raw = str(key).encode("utf-8")
    if not raw:
        raise ValueError("the workshop key must not be empty")
    return raw


def completion_code(learner: str, exercise: str, key) -> str:
    """The 10-character base32 completion code of ``learner`` for ``exercise`` under ``key``.

    >>> completion_code("learner01", "l1_certified_radius", "k") == completion_code("learner01", "l1_certified_radius", "k")
    True
    >>> len(completion_code("learner01", "l1_certified_radius", "k"))
    10
    """
    if not learner or not exercise:
        raise ValueError("learner and exercise must be non-empty")
    msg = f"poisoning-lab/v1\x00{learner}\x00{exercise}".encode("utf-8")
    digest = hmac.new(_key_bytes(key), msg, hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii")[:CODE_LENGTH]


def announce(exercise: str) -> None:
    """Print ``exercise``'s completion code if a workshop key is configured; otherwise nothing.

    The learner is ``$LAB_LEARNER`` or, if unset, the login name. Called by ``lk.checks.check``
    after the verdict of an answer that passes, and by ``python -m labkit challenge --score``
    for a passing capstone (``l5_capstone``). Nothing else calls it: running a notebook as it
    ships earns no code.
    """
    key = os.environ.get(KEY_ENV)
    if not key:
        return
    learner = os.environ.get(LEARNER_ENV) or getpass.getuser()
    print(f"[{exercise}] completion code: {learner}:{completion_code(learner, exercise, key)}")
