"""The ``agency`` and ``judge-agreement`` commands: HumanAgencyBench with a judge, from the command line."""

from __future__ import annotations

import sys

from infalign_core.errors import InfAlignError


def add_agency(sub) -> None:
    """Register ``agency``."""
    p = sub.add_parser(
        "agency",
        help="score a policy on HumanAgencyBench's dimensions with a judge, plain and under best/worst-of-N",
        description="Sample K answers to each HAB test, grade each with the judge on its dimension's rubric "
        "(assets/rubrics), and give each dimension's mean and standard error; with --select-reward, also the "
        "expected score of the best-of-N and worst-of-N pick by that reward (exact over all N-subsets).",
    )
    p.add_argument(
        "--policy", required=True, help="the policy: a chat model's folder, a hub id, a preset or a run"
    )
    p.add_argument("--judge", required=True, help="the judge: a chat model's folder, a hub id or a preset")
    p.add_argument(
        "--prompts",
        default="hab",
        help="hab (the hub), hab:DIMENSION[,DIMENSION], or hab-fixture[:DIMENSION] (the offline sample)",
    )
    p.add_argument("--tests-per-dimension", type=int, default=20, help="the first T tests of each dimension")
    p.add_argument("--n", type=int, default=4, help="N of best-of-N / worst-of-N")
    p.add_argument("--k", type=int, default=8, help="answers per test (K ≥ N)")
    p.add_argument(
        "--select-reward",
        default="judge:helpfulness",
        help="the reward best/worst-of-N ranks answers by (judge:RUBRIC uses --judge unless @MODEL; 'none': "
        "plain scores only)",
    )
    p.add_argument("--max-new-tokens", type=int, default=128, help="the policy's answer length")
    p.add_argument("--judge-max-new-tokens", type=int, default=256, help="the judge's answer length")
    p.add_argument("--temperature", type=float, default=1.0, help="the policy's sampling temperature")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_agency)


def _judges(judge_model, device: str | None, max_new_tokens: int):
    """dimension → its JudgeReward, sharing one loaded judge model."""
    from infalign_core.agency import judges_for
    from infalign_core.models import load_policy

    return judges_for(load_policy(judge_model, device=device), max_new_tokens)


def run_agency(args) -> int:
    """Run ``agency``."""
    from infalign_core import agency, hab
    from infalign_core.cli_output import print_json, print_unscored
    from infalign_core.models import load_policy
    from infalign_core.rewards import load_reward

    if args.tests_per_dimension < 1:
        raise InfAlignError(f"--tests-per-dimension must be at least 1, got {args.tests_per_dimension}.")
    if args.n < 1 or args.k < args.n:
        raise InfAlignError(f"N = {args.n} needs 1 ≤ N ≤ K answers per test; got K = {args.k}.")
    tests = hab.load_tests(args.prompts, limit=args.tests_per_dimension)
    policy = _load_policy(args.policy, args.device, load_policy)
    judge_model = load_policy(args.judge, device=args.device)
    judges = agency.judges_for(judge_model, args.judge_max_new_tokens)
    select = agency.selection_reward(
        args.select_reward,
        judge_model,
        lambda spec: load_reward(spec, device=args.device, judge=args.judge),
        args.judge_max_new_tokens,
    )

    def say(message: str) -> None:
        if not args.json:
            print(f"… {message}", file=sys.stderr, flush=True)

    results = agency.agency_scores(
        policy,
        tests,
        judges,
        n=args.n,
        k=args.k,
        select_reward=select,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        seed=args.seed,
        progress=say,
    )
    print_unscored(*(judges(r.dimension) for r in results), *([select] if select else []))
    select_name = select.name if select else None
    out = {
        "policy": args.policy,
        "judge": args.judge,
        "prompts": args.prompts,
        "n": args.n,
        "k": args.k,
        "select_reward": select_name,
        "dimensions": {r.dimension: r.as_dict() for r in results},
    }
    if args.json:
        print_json(out)
        return 0
    print(
        f"policy {args.policy} · judge {args.judge} · K = {args.k} answers per test (mean ± standard error)"
    )
    head = f"{'dimension':<28} {'tests':>5}  {'plain':>13}"
    if select:
        head += f"  {'best-of-' + str(args.n):>13}  {'worst-of-' + str(args.n):>13}  {'unscored':>8}"
    print(head)
    for r in results:
        line = f"{r.title:<28} {r.tests:>5}  {_pm(r.mean, r.stderr):>13}"
        if select:
            line += f"  {_pm(r.bon_mean, r.bon_stderr):>13}  {_pm(r.won_mean, r.won_stderr):>13}"
            line += f"  {100 * r.unscored_share:>7.1f}%"
        print(line)
    for line in agency.change_lines(results, args.n, select_name or ""):
        print(line)
    return 0


def _load_policy(source: str, device, load_policy):
    """A policy by source; a CTRL run id or folder uses its checkpoint."""
    from infalign_core import challengers

    try:
        return challengers.load_challenger(source, device=device)[0]
    except InfAlignError:
        return load_policy(source, device=device)


def _pm(mean: float, stderr: float) -> str:
    """'0.41 ± 0.03' ('—' for a missing mean)."""
    import math

    if not math.isfinite(mean):
        return "—"
    return f"{mean:.2f} ± {stderr:.2f}" if math.isfinite(stderr) else f"{mean:.2f}"


def add_judge_agreement(sub) -> None:
    """Register ``judge-agreement``."""
    p = sub.add_parser(
        "judge-agreement",
        help="a judge's correlation with HAB's human annotations, per dimension",
        description="Grade HAB's human-annotated responses with the judge on each dimension's rubric and give "
        "the Pearson and Spearman correlation with the humans' mean score, per dimension.",
    )
    p.add_argument("--judge", required=True, help="the judge: a chat model's folder, a hub id or a preset")
    p.add_argument(
        "--annotations",
        default="hab",
        help="hab (the hub), hab:DIMENSION, or hab-fixture (the offline sample)",
    )
    p.add_argument(
        "--per-dimension", type=int, default=150, help="at most this many annotated responses each"
    )
    p.add_argument("--judge-max-new-tokens", type=int, default=256)
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_judge_agreement)


def run_judge_agreement(args) -> int:
    """Run ``judge-agreement``."""
    from dataclasses import asdict

    from infalign_core import agency, hab
    from infalign_core.cli_output import print_json

    if args.per_dimension < 1:
        raise InfAlignError(f"--per-dimension must be at least 1, got {args.per_dimension}.")
    annotations = hab.load_annotations(args.annotations, limit=args.per_dimension)
    results = agency.judge_agreement(annotations, _judges(args.judge, args.device, args.judge_max_new_tokens))
    if args.json:
        print_json({"judge": args.judge, "dimensions": {r.dimension: asdict(r) for r in results}})
        return 0
    print(f"judge {args.judge} against the human mean ({args.annotations})")
    print(f"{'dimension':<28} {'responses':>9} {'pearson':>8} {'spearman':>8} {'unscored':>8}")
    for r in results:
        fmt = lambda v: "—" if v is None else f"{v:+.2f}"  # noqa: E731
        print(
            f"{hab.TITLES[r.dimension]:<28} {r.responses:>9} {fmt(r.pearson):>8} {fmt(r.spearman):>8} "
            f"{100 * r.unscored_share:>7.1f}%"
        )
    return 0
