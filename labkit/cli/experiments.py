"""``list``, ``run``, ``population`` and ``tour``: the registry and :func:`labkit.experiment.run` on the
command line.

- ``list [--json]``: every attack (scenario, settings and defaults, the defences that apply)
  and every defence (kind, settings).
- ``run ATTACK [--defence NAME] [--dataset D] [--seed N] [--rate R] [--set K=V ...]
  [--defence-set K=V ...] [--json]``: one experiment; a defence that does not apply, an
  unknown setting or a bad value exits 2 with a one-line reason before any work starts.
- ``population [--seed N] [--shadow N] [--held-out N] [--queries N] [--json]``: the population
  detector of lesson 9 (:func:`labkit.experiment.population_detection`), AUROC on held-out
  models of a trigger kind it trained on and of one it never saw.
- ``tour [--quick] [--json]``: every attack against every defence that applies, a scoreboard.
"""
from __future__ import annotations

import ast
import json

from .validate import count, rate, seed

__all__ = ["add_parser", "JSON_FIELDS"]

#: Fields of the ``run --json`` contract, in order (extra fields may follow).
JSON_FIELDS = ("attack", "defence", "dataset", "seed", "params", "n_train", "n_poison",
               "clean_accuracy_no_attack", "clean_accuracy", "attack_success",
               "clean_accuracy_defended", "attack_success_defended", "control_success",
               "label_consistency", "detection", "seconds")


def _parse_sets(pairs) -> dict:
    out = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
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


def _print_table(rows) -> None:
    head = ("attack", "defence", "acc_clean", "acc", "success", "control", "acc_def", "succ_def", "det_P", "det_R")
    print(f"{head[0]:<20} {head[1]:<22}" + "".join(h.rjust(10) for h in head[2:]))
    for r in rows:
        det = r["detection"] or {}
        vals = (r["clean_accuracy_no_attack"], r["clean_accuracy"], r["attack_success"], r["control_success"],
                r["clean_accuracy_defended"], r["attack_success_defended"],
                det.get("precision"), det.get("recall"))
        print(f"{r['attack']:<20} {str(r['defence'] or '-'):<22}" + "".join(_fmt(v, 10) for v in vals))


def cmd_list(args) -> int:
    from ..registry import describe

    doc = describe()
    if args.json:
        print(json.dumps(doc, indent=1))
        return 0
    print("attacks (scenario: defences that apply):")
    for a in doc["attacks"]:
        print(f"  {a['name']:<20} {a['scenario']:<10} {a['summary']}\n  {'':<31}defences: {', '.join(a['defences'])}")
    print("defences:")
    for d in doc["defences"]:
        print(f"  {d['name']:<22} {d['kind']:<12} {d['summary']}")
    return 0


def cmd_run(args) -> int:
    from ..experiment import run

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


def cmd_population(args) -> int:
    from ..experiment import population_detection

    r = population_detection(dataset=args.dataset, seed=args.seed, n_shadow=args.shadow, n_held_out=args.held_out,
                             n_queries=args.queries, progress=not args.json)
    if args.json:
        print(json.dumps(r))
    else:
        print(f"trained on {r['n_shadow']} shadow models (patch triggers), {r['n_queries']} random queries")
        print(f"AUROC on {r['n_held_out']} held-out patch models: {r['auroc_seen']:.2f}")
        print(f"AUROC on {r['n_held_out']} blend models (a trigger it never saw): {r['auroc_unseen']:.2f}")
    return 0


def cmd_tour(args) -> int:
    from ..experiment import run
    from ..registry import ATTACKS

    rows = []
    for spec in ATTACKS.values():
        defences = spec.defences[:1] if args.quick else spec.defences
        for defence in defences or (None,):
            row = _row(run(spec.name, defence=defence, seed=args.seed,
                           params={"n_targets": 3} if args.quick and spec.scenario in ("transfer", "finetune") else None))
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if not args.json:
        _print_table(rows)
    return 0


def add_parser(sub) -> None:
    """Register ``list``, ``run``, ``population`` and ``tour``."""
    from ..data import DATASETS

    p = sub.add_parser("list", help="registered attacks and defences")
    p.add_argument("--json", action="store_true", help="the registry as one JSON document")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run one attack, optionally against one defence that applies to it")
    p.add_argument("attack")
    p.add_argument("--defence", default=None)
    p.add_argument("--dataset", default=None, choices=sorted(DATASETS),
                   help="default: where the attack's scenario works")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--rate", type=rate, default=None, help="the attack's budget in (0, 1]")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="a setting of the attack or its scenario (repeatable)")
    p.add_argument("--defence-set", action="append", metavar="KEY=VALUE",
                   help="a setting of the defence (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("population", help="the population detector: a meta-classifier trained on shadow models, "
                                          "scored on held-out models (lesson 9)")
    p.add_argument("--dataset", default=None, choices=sorted(DATASETS), help="default: digits")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--shadow", type=count(10_000, 2), default=100, help="models the meta-classifier learns from")
    p.add_argument("--held-out", type=count(10_000, 2), default=40, help="held-out models of each trigger kind")
    p.add_argument("--queries", type=count(10_000), default=50, help="random query inputs")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_population)

    p = sub.add_parser("tour", help="every attack with the defences that apply, as a scoreboard")
    p.add_argument("--quick", action="store_true", help="only the first defence per attack, 3 targets")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tour)
