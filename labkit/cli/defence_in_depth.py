"""Lesson 5's subcommands: ``audit``, ``manifest create|verify`` and ``challenge``.

``python -m labkit audit [--dataset digits] [--attack NAME --rate R] [--npz FILE] [--top N] [--json]``
    Audit a training set (optionally poisoned first, to practise) and list the most
    suspicious rows. With ``--attack``, the detection quality against the truth is printed.
``python -m labkit manifest create [--dataset digits] [--out FILE]``
``python -m labkit manifest verify --manifest FILE [--dataset digits | --npz FILE]``
    The signing key comes from ``--key-file`` or the ``LABKIT_MANIFEST_KEY`` environment
    variable. ``verify`` exits 0 when the data matches, 1 when rows differ, 2 when the
    manifest's signature is invalid or the input is unreadable.
``python -m labkit challenge --seed N [--score FILE] [--export FILE.npz]``
    Print the capstone's task; score a file of flagged row indices (one per line); write the
    mystery training set to FILE.npz (a file name ending in .npz, in a folder that exists).

Every input is checked before any work starts (:mod:`labkit.cli.validate`): ``--npz`` must be a
regular file holding ``X`` (n,[C,]H,W) finite in [0, 1] and ``y`` (n,) labels >= 0, nothing
is unpickled; ``--top`` is at least 1; ``--rate`` needs ``--attack``. Bad input exits 2.

See Also: notebooks/05_defence_in_depth.ipynb
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from .validate import count, input_file, output_file, rate, read_text, regular_file, seed

__all__ = ["add_parser"]


def _load_npz(path) -> "object":
    """A Dataset from an .npz of ``X`` (n,[C,]H,W) in [0, 1] and ``y`` (n,) integer labels;
    ``ValueError`` with a one-line reason for anything else (nothing is unpickled)."""
    from ..types import Dataset

    path = regular_file(path, "--npz file")
    with np.load(path, allow_pickle=False) as f:
        if not isinstance(f, np.lib.npyio.NpzFile):   # a plain .npy
            raise ValueError(f"--npz file {str(path)!r} is an .npy array, not an .npz archive of X and y")
        missing = [k for k in ("X", "y") if k not in f.files]
        if missing:
            raise ValueError(f"--npz file {str(path)!r} has no array {missing[0]!r} (it holds {', '.join(f.files) or 'nothing'})")
        X, y = f["X"], f["y"]
    if not (X.dtype.kind in "biuf" and X.ndim in (3, 4) and len(X)):
        raise ValueError(f"X must be non-empty real numbers shaped (n, H, W) or (n, C, H, W), got {X.dtype} {X.shape}")
    if not (np.issubdtype(y.dtype, np.integer) and y.shape == (len(X),)):
        raise ValueError(f"y must hold {len(X)} integer labels, got {y.dtype} {y.shape}")
    if y.min() < 0 or y.max() > 10_000:
        raise ValueError(f"labels must be class numbers in [0, 10000], got [{y.min()}, {y.max()}]")
    X = X.astype(np.float32)
    if not (np.isfinite(X).all() and X.min() >= 0 and X.max() <= 1):
        raise ValueError("X must hold finite pixels in [0, 1]")
    if X.ndim == 3:
        X = X[:, None]
    return Dataset(X, y.astype(np.int64), int(y.max()) + 1, path.stem)


def _training_set(args):
    from ..data import load

    return _load_npz(args.npz) if getattr(args, "npz", None) else load(args.dataset or "digits", seed=args.seed).train


def _cmd_audit(args) -> int:
    from ..defences.audit import audit
    from ..experiment import poison
    from ..metrics import auroc

    if args.attack and args.npz:
        raise ValueError("--attack poisons a named --dataset; it cannot be combined with --npz")
    if args.rate is not None and not args.attack:
        raise ValueError("--rate is the budget of --attack; give --attack NAME too")
    if args.attack:
        poisoned = poison(args.attack, dataset=args.dataset, seed=args.seed, rate=args.rate)
        data, truth = poisoned.as_dataset(), poisoned.is_poison
    else:
        data, truth = _training_set(args), None
    report = audit(data, seed=args.seed)
    top = report.top(args.top)
    out = {"n_rows": report.n_rows, "class_counts": report.class_counts.tolist(),
           "duplicate_groups": len(report.exact_duplicates),
           "conflicting_duplicates": [[int(i) for i in g] for g in report.conflicting_duplicates],
           "near_duplicates": [[int(i) for i in p] for p in report.near_duplicates],
           "top": [{"row": int(i), "label": int(data.y[i]), "suspicion": round(float(report.suspicion[i]), 3)}
                   for i in top]}
    if truth is not None:
        out["auroc_vs_truth"] = round(auroc(report.suspicion, truth), 4)
    if args.json:
        print(json.dumps(out))
        return 0
    print(report.table())
    print(f"most suspicious {args.top} rows (row: label, suspicion):")
    print("  " + ", ".join(f"{r['row']}: {r['label']}, {r['suspicion']:.1f}" for r in out["top"]))
    if truth is not None:
        print(f"AUROC of the suspicion ranking against the true poisons: {out['auroc_vs_truth']:.3f}")
    return 0


def _key(args) -> bytes:
    if args.key_file:
        path = regular_file(args.key_file, "--key-file")
        if path.stat().st_size > 1 << 20:
            raise ValueError(f"--key-file {str(path)!r} is larger than 1 MiB: not a key")
        key = path.read_bytes().strip()
        if not key:
            raise ValueError(f"--key-file {str(path)!r} is empty")
        return key
    key = os.environ.get("LABKIT_MANIFEST_KEY")
    if not key:
        raise ValueError("no signing key: pass --key-file FILE or set LABKIT_MANIFEST_KEY")
    return key.encode()


def _read_manifest(path) -> dict:
    from ..defences.provenance import ManifestError

    text = read_text(path, "--manifest")
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise ManifestError(f"{path} is not a manifest: {exc}") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path} is not a manifest: a JSON {type(manifest).__name__}, not an object")
    return manifest


def _cmd_manifest(args) -> int:
    from ..defences import provenance as prov

    if args.action == "verify" and not args.manifest:
        raise ValueError("manifest verify needs --manifest FILE")
    if args.action == "create" and args.manifest:
        raise ValueError("--manifest is the manifest to verify; manifest create writes to --out")
    key = _key(args)
    if len(key) < 16:
        raise ValueError("the signing key must be at least 16 bytes")
    try:
        manifest = _read_manifest(args.manifest) if args.action == "verify" else None
        data = _training_set(args)
        if args.action == "create":
            manifest = prov.create_manifest(data, key=key, source=args.source or f"labkit.data.{args.dataset or 'digits'}(seed={args.seed})")
            print(prov.save_manifest(manifest, args.out))
            return 0
        report = prov.verify(data, manifest, key=key)
    except prov.ManifestError as exc:
        print(f"REJECTED: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(f"{'OK' if report.ok else 'CHANGED'}: added {list(report.added)}, removed {list(report.removed)}, "
          f"modified {list(report.modified)}")
    return 0 if report.ok else 1


def _read_flags(path) -> list:
    """Row indices from a flag file: whitespace-separated non-negative integers."""
    text = read_text(path, "--score file", max_bytes=16 << 20)
    flags = []
    for line, row in enumerate(text.splitlines(), 1):
        for token in row.split():
            if not token.isdigit() or not token.isascii() or len(token) > 9:
                raise ValueError(f"{path} line {line}: {token[:20]!r} is not a row index "
                                 "(the file must hold row indices, one per line)")
            flags.append(int(token))
    return flags


def _cmd_challenge(args) -> int:
    from ..lessons import l05 as challenge

    flags = _read_flags(args.score) if args.score else None   # every input checked before any work
    if args.export:
        data = challenge.mystery(args.seed)
        np.savez_compressed(args.export, X=data.X, y=data.y)
        print(f"wrote {args.export}")
    if flags is not None:
        from ..metrics import fmt_rate
        result = challenge.score(np.array(flags, dtype=np.int64), seed=args.seed)
        print(json.dumps(result, default=float) if args.json else
              f"precision {fmt_rate(result['precision'], 3)}  recall {result['recall']:.3f}  F1 {result['f1']:.3f}\n" +
              "\n".join(f"  {name}: recall {v['recall']:.2f} of {v['n_poison']}" if v["recall"] is not None
                        else f"  {name}: none in this mix" for name, v in result["per_family"].items()))
        if challenge.capstone_verdict(result)[0] and not args.json:
            from ..completion import announce   # a workshop's code, after the verdict; else nothing
            announce("l5_capstone")
        return 0
    if not args.export:
        print(challenge.task(args.seed))
    return 0


def add_parser(subparsers) -> None:
    """Register ``audit``, ``manifest`` and ``challenge``."""
    from ..data import DATASETS

    def data_args(p):
        p.add_argument("--dataset", default=None, choices=sorted(DATASETS),
                       help="default: digits (with --attack: where that attack works)")
        p.add_argument("--seed", type=seed, default=0)
        p.add_argument("--npz", default=None, type=input_file, help="an .npz file with arrays X (n,[C,]H,W) in [0,1] and y")

    p = subparsers.add_parser("audit", help="audit a training set and rank rows by suspicion")
    data_args(p)
    p.add_argument("--attack", default=None, help="poison the data first with this attack (practice)")
    p.add_argument("--rate", type=rate, default=None, help="the attack's budget in (0, 1] (default: its own)")
    p.add_argument("--top", type=count(10**6), default=10, help="how many rows to list (at least 1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_audit)

    p = subparsers.add_parser("manifest", help="create or verify a signed provenance manifest")
    p.add_argument("action", choices=["create", "verify"])
    data_args(p)
    p.add_argument("--manifest", default=None, type=input_file, help="the manifest to verify against")
    p.add_argument("--out", default=None, type=output_file(parent_must_exist=False),
                   help="where to write (default data/manifests/NAME.json)")
    p.add_argument("--source", default=None)
    p.add_argument("--key-file", default=None, type=input_file)
    p.set_defaults(func=_cmd_manifest)

    p = subparsers.add_parser("challenge", help="the capstone: print the task, or score flagged rows")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--score", default=None, type=input_file, help="file of flagged row indices, one per line")
    p.add_argument("--export", default=None, type=output_file(".npz"),
                   help="write the mystery training set to this .npz (in a folder that exists)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_challenge)
