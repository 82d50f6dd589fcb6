"""What a learning run changed in the augmentations: ``python experiments/examples.py NAME [--count N]``.

Augments every judged dev query greedily with the untrained policy and with run NAME's trained policy (as the
real-index dev curve does), scores both on each of the run's ``curve_systems`` and writes
``experiments/reports/NAME/examples.md``: the queries whose NDCG@10 rose most and the one that fell most on the
first curve system with the run's reward weighting (its ``reward_system``), before and after.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coaug import params as P, runtime_env
from coaug.policy.model import load_policy
from coaug.policy.prompts import load_prompt
from coaug.rl.config import train_config, variant_outputs
from coaug.rl.run import dev_curve, real_indexes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))
from learning import VARIANT, run_params  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a finished run of experiments/learning.yaml")
    parser.add_argument("--count", type=int, default=3, help="queries that rose most (default 3)")
    parser.add_argument("--queries", type=int, help="only the first N judged dev queries (default: all)")
    args = parser.parse_args()
    runtime_env.configure()
    source = run_params(args.name, None)  # the run's params with today's params.yaml (keys added since)
    params = P.load_params(source)
    config = train_config(params, VARIANT, source)
    trained = variant_outputs(params.train_outputs, VARIANT)["policy_dir"]
    systems = [config.reward_system, *(s for s in config.curve_systems if s != config.reward_system)]
    indexes = real_indexes(params, config.reward_system, systems)
    prompt = load_prompt(params.augment.prompts_dir, config.format, config.query_prompt)
    curve = dev_curve(config, params.dataset, params.augment, indexes, prompt)
    if args.queries:
        curve.queries = dict(list(curve.queries.items())[: args.queries])
    texts, scores = {}, {}
    for label, spec in (("untrained", config.policy or params.policy.model), ("trained", str(trained))):
        policy = load_policy(spec, params.policy.cache_dir, params.policy.dtype)
        texts[label] = curve.augment(policy)
        scores[label] = curve.score(texts[label])
    reward = systems[0]
    gain = {qid: scores["trained"][reward][qid] - scores["untrained"][reward][qid] for qid in curve.queries}
    ranked = sorted(gain, key=gain.get)
    chosen = [*reversed(ranked[-args.count :]), ranked[0]]
    lines = [
        f"# `{args.name}`: dev queries before and after training",
        "",
        f"Greedy augmentations (inference settings) of the untrained policy and of the run's policy; NDCG@10 on "
        f"{', '.join(f'`{s}`' for s in systems)} ({len(curve.queries)} dev queries). The {args.count} queries whose NDCG@10 on `{reward}` rose most, "
        "then the one that fell most.",
        "",
    ]
    for qid in chosen:
        lines += [f"## {qid}: {curve.queries[qid]}", ""]
        for label in ("untrained", "trained"):
            ndcg = ", ".join(f"{scores[label][s][qid]:.3f}" for s in systems)
            lines += [f"- **{label}** (NDCG@10 {ndcg}): {texts[label][qid]!r}"]
        lines.append("")
    out = ROOT / "experiments" / "reports" / args.name / "examples.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
