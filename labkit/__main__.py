"""The command line: ``python -m labkit {list,run,tour,...}``.

A stable contract for scripts and instructors:

- ``list``: registered attacks and defences, one per line.
- ``run ATTACK [--defence NAME] [--dataset digits] [--seed N] [--rate R] [--set K=V ...]
  [--defence-set K=V ...] [--json]``: one experiment (:func:`labkit.experiment.run`).
  With ``--json``: one JSON object per line.
- ``tour [--quick] [--json]``: every attack with its matching defences, as a scoreboard.

Exit codes: 0 success, 2 unknown name or bad value (one-line message on stderr).
"""
from __future__ import annotations

import argparse
import ast
import importlib
import json
import sys

__all__ = ["main"]

#: Fields of the ``run --json`` contract, in order (extra fields may follow).
JSON_FIELDS = ("attack", "defence", "dataset", "seed", "params", "n_train", "n_poison",
               "clean_accuracy_no_attack", "clean_accuracy", "attack_success",
               "clean_accuracy_defended", "attack_success_defended", "detection", "seconds")


#: Modules that bring their own subcommands; each has ``add_parser(subparsers)``.
EXTENSIONS: tuple = ("labkit.bench", "labkit.defence_in_depth_cli", "labkit.supplychain.cli", "labkit.progress")


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


def _parse_sets(pairs) -> dict:
    out = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw  # a bare word such as trigger=patch stays a string
    return out


def _fmt(v, width=7):
    if v is None:
        return "-".rjust(width)
    return f"{v:.3f}".rjust(width) if isinstance(v, float) else str(v).rjust(width)


def _row(result) -> dict:
    d = result.as_dict()
    row = {k: d[k] for k in JSON_FIELDS}
    row.update({k: v for k, v in d.items() if k not in row})
    return row


def cmd_list(args) -> int:
    from .registry import ATTACKS, DEFENCES

    print("attacks:")
    for spec in ATTACKS.values():
        print(f"  {spec.name:<22} {spec.family:<22} {spec.summary}")
    print("defences:")
    for spec in DEFENCES.values():
        print(f"  {spec.name:<22} {spec.kind:<22} {spec.summary}")
    return 0


def _print_table(rows) -> None:
    head = ("attack", "defence", "acc_clean", "acc", "success", "acc_def", "succ_def", "det_P", "det_R")
    print(f"{head[0]:<20} {head[1]:<20}" + "".join(h.rjust(10) for h in head[2:]))
    for r in rows:
        det = r["detection"] or {}
        vals = (r["clean_accuracy_no_attack"], r["clean_accuracy"], r["attack_success"],
                r["clean_accuracy_defended"], r["attack_success_defended"],
                det.get("precision"), det.get("recall"))
        print(f"{r['attack']:<20} {str(r['defence'] or '-'):<20}" + "".join(_fmt(v, 10) for v in vals))


def cmd_run(args) -> int:
    from .experiment import run

    if args.rate is not None and not 0 < args.rate <= 1:
        raise UsageError(f"--rate must be in (0, 1], got {args.rate}")
    result = run(args.attack, defence=args.defence, dataset=args.dataset, seed=args.seed,
                 rate=args.rate, params=_parse_sets(args.set),
                 defence_params=_parse_sets(args.defence_set), progress=not args.json)
    row = _row(result)
    if args.json:
        print(json.dumps(row))
    else:
        _print_table([row])
        if row["extra"]:
            print("extra:", json.dumps(row["extra"]))
    return 0


def cmd_tour(args) -> int:
    from .experiment import run
    from .registry import ATTACKS

    rows = []
    for spec in ATTACKS.values():
        defences = spec.defences[:1] if args.quick else spec.defences
        for defence in defences or (None,):
            row = _row(run(spec.name, defence=defence, seed=args.seed))
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if not args.json:
        _print_table(rows)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .data import LOADERS

    parser = argparse.ArgumentParser(prog="python -m labkit",
                                     description="The Poisoning Lab's attacks and defences.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="registered attacks and defences")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run one attack, optionally against one defence")
    p.add_argument("attack")
    p.add_argument("--defence", default=None)
    p.add_argument("--dataset", default="digits", choices=sorted(LOADERS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=float, default=None, help="the attack's budget in (0, 1]")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="extra keyword argument for the attack (repeatable)")
    p.add_argument("--defence-set", action="append", metavar="KEY=VALUE",
                   help="extra keyword argument for the defence (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("tour", help="every attack with its matching defences, as a scoreboard")
    p.add_argument("--quick", action="store_true", help="only the first matching defence per attack")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tour)

    for name in EXTENSIONS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv=None) -> int:
    from .registry import ATTACKS, DEFENCES

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        for kind, name, table in (("attack", args.attack, ATTACKS), ("defence", args.defence, DEFENCES)):
            if name is not None and name not in table:
                print(f"error: unknown {kind} {name!r}; valid {kind}s: {', '.join(table)}", file=sys.stderr)
                return 2
    try:
        return args.func(args)
    except (UsageError, ValueError, TypeError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
