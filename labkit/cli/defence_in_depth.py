"""Lesson 5's subcommands: ``audit``, ``manifest create|verify`` and ``challenge``.

``python -m labkit audit [--dataset digits] [--attack NAME --rate R] [--npz FILE] [--top N] [--json]``
    Audit a training set (optionally poisoned first, to practise) and list the most
    suspicious rows. With ``--attack``, the detection quality against the truth is printed.
``python -m labkit manifest create [--dataset digits] [--out FILE]``
``python -m labkit manifest verify --manifest FILE [--dataset digits | --npz FILE]``
    The signing key comes from ``--key-file`` or the ``LABKIT_MANIFEST_KEY`` environment
    variable. ``verify`` exits 0 when the data matches, 1 when rows differ, 2 when the
    manifest's signature is invalid or the input is unreadable.
``python -m labkit challenge --seed N [--score FILE] [--export FILE]``
    Print the capstone's task; score a file of flagged row indices (one per line).

See Also: notebooks/05_defence_in_depth.ipynb
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

__all__ = ["add_parser"]


def _load_npz(path) -> "object":
    from ..types import Dataset

    with np.load(path) as f:
        X, y = f["X"], f["y"]
    X = X.astype(np.float32)
    if X.ndim == 3:
        X = X[:, None]
    return Dataset(X, y, int(y.max()) + 1, Path(path).stem)


def _training_set(args):
    from ..data import load

    return _load_npz(args.npz) if getattr(args, "npz", None) else load(args.dataset or "digits", seed=args.seed).train


def _cmd_audit(args) -> int:
    from ..defences.audit import audit
    from ..experiment import poison
    from ..metrics import auroc

    if args.attack:
        if args.npz:
            raise ValueError("--attack poisons a named --dataset; it cannot be combined with --npz")
        poisoned = poison(args.attack, dataset=args.dataset, seed=args.seed, rate=args.rate)
        data, truth = poisoned.as_dataset(), poisoned.is_poison
    else:
        data, truth = _training_set(args), None
    report = audit(data, seed=args.seed)
    top = report.top(args.top)
    out = {"n_rows": report.n_rows, "class_counts": report.class_counts.tolist(),
           "duplicate_groups": len(report.exact_duplicates),
           "conflicting_duplicates": report.conflicting_duplicates,
           "near_duplicates": [list(p) for p in report.near_duplicates],
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
        return Path(args.key_file).read_bytes().strip()
    key = os.environ.get("LABKIT_MANIFEST_KEY")
    if not key:
        raise ValueError("no signing key: pass --key-file FILE or set LABKIT_MANIFEST_KEY")
    return key.encode()


def _cmd_manifest(args) -> int:
    from ..defences import provenance as prov

    key = _key(args)
    data = _training_set(args)
    if args.action == "verify" and not args.manifest:
        raise ValueError("manifest verify needs --manifest FILE")
    if args.action == "create":
        manifest = prov.create_manifest(data, key=key, source=args.source or f"labkit.data.{args.dataset or 'digits'}(seed={args.seed})")
        print(prov.save_manifest(manifest, args.out))
        return 0
    try:
        report = prov.verify(data, prov.load_manifest(args.manifest), key=key)
    except prov.ManifestError as exc:
        print(f"REJECTED: {exc}", file=sys.stderr)
        return 2
    print(f"{'OK' if report.ok else 'CHANGED'}: added {list(report.added)}, removed {list(report.removed)}, "
          f"modified {list(report.modified)}")
    return 0 if report.ok else 1


def _cmd_challenge(args) -> int:
    from ..lessons import l05 as challenge

    if args.export:
        data = challenge.mystery(args.seed)
        np.savez_compressed(args.export, X=data.X, y=data.y)
        print(f"wrote {args.export}")
    if args.score:
        text = Path(args.score).read_text().split()
        try:
            flags = np.array([int(t) for t in text], dtype=int)
        except ValueError as exc:
            raise ValueError(f"{args.score} must hold row indices, one per line ({exc})") from exc
        result = challenge.score(flags, seed=args.seed)
        print(json.dumps(result, default=float) if args.json else
              f"precision {result['precision']:.3f}  recall {result['recall']:.3f}  F1 {result['f1']:.3f}\n" +
              "\n".join(f"  {name}: recall {v['recall']:.2f} of {v['n_poison']}" if v["recall"] is not None
                        else f"  {name}: none in this mix" for name, v in result["per_family"].items()))
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
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--npz", default=None, help="an .npz file with arrays X (n,[C,]H,W) in [0,1] and y")

    p = subparsers.add_parser("audit", help="audit a training set and rank rows by suspicion")
    data_args(p)
    p.add_argument("--attack", default=None, help="poison the data first with this attack (practice)")
    p.add_argument("--rate", type=float, default=None, help="the attack's budget (default: its own)")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_audit)

    p = subparsers.add_parser("manifest", help="create or verify a signed provenance manifest")
    p.add_argument("action", choices=["create", "verify"])
    data_args(p)
    p.add_argument("--manifest", default=None, help="the manifest to verify against")
    p.add_argument("--out", default=None, help="where to write (default data/manifests/NAME.json)")
    p.add_argument("--source", default=None)
    p.add_argument("--key-file", default=None)
    p.set_defaults(func=_cmd_manifest)

    p = subparsers.add_parser("challenge", help="the capstone: print the task, or score flagged rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--score", default=None, help="file of flagged row indices, one per line")
    p.add_argument("--export", default=None, help="write the mystery training set to this .npz")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_challenge)
