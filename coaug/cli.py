"""``coaug <stage>``: one subcommand per DVC stage. Every knob comes from params.yaml."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from coaug import params as P
from coaug.atomic_io import require_writable
from coaug.errors import CoaugError
from coaug.params_schema import Params

logger = logging.getLogger("coaug")

DESCRIPTION = """\
coaug trains a small instruction LLM to augment queries and documents for a frozen retriever
(BM25 on Lucene, or a dense encoder on faiss). Each subcommand is one stage of the DVC pipeline
(dvc.yaml) and reads its knobs from params.yaml; every run is logged to MLflow (mlruns/).
`coaug STAGE --help` says what a stage reads, what it writes and which params.yaml keys it uses
(the folders it names, such as dataset.prepared_dir, are params.yaml keys too)."""


def mlflow_metric_name(name: str) -> str:
    """MLflow refuses '@' in metric names: NDCG@10 -> NDCG_at_10."""
    return name.replace("@", "_at_")


def cmd_prepare(params: Params, args: argparse.Namespace) -> None:
    from coaug.data.prepare import DOWNLOADS, prepare
    from coaug.tracking import stage_run, store_folders

    out_dir = Path(params.dataset.prepared_dir)
    require_writable([out_dir.parent / DOWNLOADS, *store_folders(params.mlflow)], [out_dir])
    stats = prepare(
        params.dataset.source, params.dataset.sha256, params.dataset.splits, params.dataset.max_unknown_qrels, out_dir
    )
    with stage_run(params, "prepare", ["dataset"], split=",".join(params.dataset.splits)) as mlflow:
        mlflow.log_metrics({"docs": stats["docs"], "queries": stats["queries"]})
        for split, counts in stats["splits"].items():
            mlflow.log_metrics({f"{split}.queries": counts["queries"], f"{split}.judgements": counts["judgements"]})
        mlflow.log_artifact(str(out_dir / "stats.json"))


def cmd_augment(params: Params, args: argparse.Namespace) -> None:
    from coaug.augment.run import SIDES, run_augmentation, run_augmentation_shard
    from coaug.augment.shards import parse_shard
    from coaug.tracking import stage_run, store_folders

    augmentation = P.augmentation(params, args.name)  # fails on an unknown name first
    # Checked before the policy is loaded: generation would only fail on it after it.
    if augmentation.query_prompt:  # the eval split's queries are the ones augmented
        P.eval_qrels_path(params.dataset)
    if args.shard:
        # A shard only fills the cache; the unsharded run that absorbs it is the stage MLflow records.
        index, count = parse_shard(args.shard)
        require_writable([params.augment.cache_dir])
        run_augmentation_shard(
            args.name, augmentation, index, count, params.policy, params.generation, params.augment, params.dataset
        )
        return
    out_dir = Path(params.augment.out_dir) / args.name
    # Before the corpus pass, not when its outputs are written at the end.
    require_writable([params.augment.cache_dir, *store_folders(params.mlflow)], [out_dir])
    logged = P.flatten({"augmentation": dataclasses.asdict(augmentation)})
    with stage_run(params, "augment", ["generation", "augment"], logged) as mlflow:
        stats = run_augmentation(
            args.name, augmentation, out_dir, params.policy, params.generation, params.augment, params.dataset
        )
        mlflow.set_tags({"dtype": stats["dtype"], "backend": stats["backend"]})
        for side in SIDES:
            if side in stats:
                mlflow.log_metrics({f"{side}.{key}": value for key, value in stats[side].items()})
        mlflow.log_artifact(str(out_dir / "stats.json"))


def cmd_train(params: Params, args: argparse.Namespace) -> None:
    from coaug.locks import locked
    from coaug.registry.register import register_policy
    from coaug.rl.config import train_config, variant_outputs
    from coaug.rl.launcher import is_launched, is_main_process, needs_launch, relaunch
    from coaug.rl.run import real_indexes, run_training
    from coaug.tracking import dataset_checksum, git_commit, params_hash, stage_run, store_folders

    variant = args.variant or params.registry.variant
    config = train_config(params, variant, args.params)  # fails on an unknown variant or a bad key before any work
    indexes = real_indexes(params, config.reward_system, config.curve_systems)
    outputs = variant_outputs(params.train_outputs, variant)
    require_writable(
        [outputs["metrics"].parent, *store_folders(params.mlflow)], [outputs["policy_dir"], outputs["checkpoint_dir"]]
    )
    # One run of a variant at a time, from its first step to its registration: a second run waits (coaug.locks
    # logs for whom), then resumes the first one's last checkpoint, trains no step and finds its policy already
    # registered (register_policy keys a version by the policy's sha256). Processes started by `accelerate
    # launch` run under the lock of the run that launched them.
    with contextlib.nullcontext() if is_launched(os.environ) else locked(outputs["checkpoint_dir"]):
        if needs_launch(config.num_processes, os.environ):  # before any MLflow run: launched processes open theirs
            relaunch(config.num_processes, args.params, args.verbose, variant)
            return

        def train(
            log_step: Callable[[int, dict[str, float]], None], log_samples: Callable[[int, list[tuple]], None]
        ) -> dict:
            return run_training(
                variant,
                config,
                outputs,
                params.dataset,
                params.policy,
                params.augment,
                params.dense,
                indexes,
                log_step,
                log_samples,
            )

        if not is_main_process(os.environ):  # the other launched processes train but log and register nothing
            train(lambda step, metrics: None, lambda step, rows: None)
            return
        overrides = P.flatten({"variant": params.train_variants[variant] or {}})
        with stage_run(params, f"train@{variant}", ["train", "generation"], overrides, split=config.split) as mlflow:

            def log_step(step: int, metrics: dict[str, float]) -> None:
                mlflow.log_metrics(metrics, step=step)

            def log_samples(step: int, rows: list[tuple]) -> None:
                columns = list(zip(*rows)) if rows else [[], [], [], []]
                table = dict(zip(("role", "text_id", "augmentation", "reward"), map(list, columns)))
                mlflow.log_table(data=table, artifact_file=f"samples/step_{step:06d}.json")

            summary = train(log_step, log_samples)
            numbers = {k: v for k, v in summary.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            mlflow.log_metrics({f"final.{k}": v for k, v in numbers.items()})
            mlflow.set_tags({"compute_dtype": summary["compute_dtype"], "train_variant": variant})
            from coaug.rl.training_plot import training_curves

            training_curves(outputs["curves"], outputs["validation"], outputs["dev_curve"], outputs["curves_plot"])
            for key in ("metrics", "curves", "validation", "dev_curve", "curves_plot"):
                mlflow.log_artifact(str(outputs[key]))
            if summary["optimizer_steps"] == 0:  # logged above, so the failed run shows why
                raise CoaugError(
                    f"no optimizer step was applied in {summary['steps']} training steps ({summary['skipped_updates']} "
                    "updates skipped with every advantage 0): the policy is unchanged and not registered"
                )
            if variant != params.registry.variant:
                logger.info(
                    "train variant %s: policy in %s (only %s is registered)",
                    variant,
                    outputs["policy_dir"],
                    params.registry.variant,
                )
                return
            tags = {
                "git_commit": git_commit(),
                "dataset_checksum": dataset_checksum(params.dataset),
                "params_hash": params_hash(params),
            }
            version = register_policy(mlflow, outputs["policy_dir"], params.registry.model_name, tags)
            logger.info("registered %s version %s as @challenger", params.registry.model_name, version)


def cmd_validate(params: Params, args: argparse.Namespace) -> None:
    from coaug.rl.config import train_config
    from coaug.rl.run import real_indexes, run_validation
    from coaug.tracking import stage_run, store_folders

    variant = args.variant or params.registry.variant
    config = dataclasses.replace(train_config(params, variant, args.params), policy=args.policy)
    require_writable(store_folders(params.mlflow))
    indexes = real_indexes(params, config.reward_system, config.curve_systems)
    logged = {"policy": args.policy, "variant": variant}
    with stage_run(params, "validate", ["train"], logged, split=config.validation_split) as mlflow:
        result = run_validation(config, params.dataset, params.policy, params.augment, params.dense, indexes)
        mlflow.log_metrics({k: v for k, v in result.items() if k not in ("per_query", "dev")})
        mlflow.log_metrics({f"dev_ndcg.{name}": sum(q.values()) / len(q) for name, q in result["dev"].items()})
    sys.stdout.write(json.dumps(result, indent=1, sort_keys=True) + "\n")


def cmd_index(params: Params, args: argparse.Namespace) -> None:
    from coaug.evaluation.outputs import output_paths
    from coaug.retrieval.retrievers import build_index
    from coaug.tracking import stage_run, store_folders

    system = P.system(params, args.system)  # fails on an unknown system first
    embeddings = [params.dense.cache_dir] if system.retriever == "dense" else []
    require_writable(
        [*embeddings, *store_folders(params.mlflow)], [output_paths(params.outputs, args.system)["index"]]
    )
    logged = P.flatten({"system": dataclasses.asdict(system)})
    with stage_run(params, "index", ["bm25", "dense"], logged, split="corpus") as mlflow:  # an index reads no split
        started = time.perf_counter()
        docs = build_index(system, output_paths(params.outputs, args.system)["index"], params.bm25, params.dense)
        mlflow.log_metrics({"docs": docs, "index_seconds": time.perf_counter() - started})


def cmd_evaluate(params: Params, args: argparse.Namespace) -> None:
    from coaug.evaluation.evaluate import evaluate_system
    from coaug.evaluation.outputs import output_paths
    from coaug.tracking import stage_run, store_folders

    system = P.system(params, args.system)  # fails on an unknown system first
    P.eval_qrels_path(params.dataset)  # and on an eval split that was not prepared
    paths = output_paths(params.outputs, args.system)
    embeddings = [params.dense.cache_dir] if system.retriever == "dense" else []
    require_writable([paths["run"].parent, paths["metrics"].parent, *embeddings, *store_folders(params.mlflow)])
    logged = P.flatten({"system": dataclasses.asdict(system)})
    with stage_run(params, "evaluate", ["bm25", "dense", "retrieval", "evaluation"], logged) as mlflow:
        started = time.perf_counter()
        summary = evaluate_system(
            args.system,
            system,
            paths["index"],
            paths["run"],
            paths["metrics"],
            paths["per_query"],
            params.dataset,
            params.evaluation,
            params.retrieval,
            params.bm25,
            params.dense,
        )
        scores = {mlflow_metric_name(m): summary[m] for m in params.evaluation.metrics}
        mlflow.log_metrics({**scores, "evaluate_seconds": time.perf_counter() - started})
        for key in ("metrics", "per_query", "run"):
            mlflow.log_artifact(str(paths[key]))


def cmd_report(params: Params, args: argparse.Namespace) -> None:
    from coaug.evaluation.freshness import LOCK, read_lock
    from coaug.evaluation.report import require_baseline, write_report
    from coaug.tracking import stage_run, store_folders

    systems = args.systems or P.system_names(params)
    require_writable([params.outputs.reports_dir, *store_folders(params.mlflow)])
    P.eval_qrels_path(params.dataset)  # no metrics file of an unprepared split can be reported
    require_baseline(params.evaluation, params.outputs, params.dataset)
    with stage_run(params, "report", ["evaluation"]) as mlflow:
        summary, paths = write_report(
            systems,
            params.evaluation,
            params.outputs,
            params.dataset,
            params.systems,
            params.augmented_systems,
            lock=read_lock(Path(args.params).parent / LOCK),  # beside params.yaml and dvc.yaml
            experiments=P.experiment_systems(params),
        )
        mlflow.log_param("systems", ",".join(systems))
        for name, entry in summary.items():
            mlflow.log_metrics(
                {f"{name}.{mlflow_metric_name(m)}": v for m, v in entry.items() if isinstance(v, float)}
            )
        for path in paths.values():
            mlflow.log_artifact(str(path))


def cmd_promote(params: Params, args: argparse.Namespace) -> None:
    from coaug.registry.promote import promote
    from coaug.tracking import store_folders

    require_writable([params.outputs.reports_dir, *store_folders(params.mlflow)], [params.promotion.serving_dir])
    report = promote(params)
    logger.info("%s v%s: %s", report["model_name"], report["challenger_version"], report["reason"])


def check_search_args(queries: list[str], k: int) -> None:
    """Refuse every bad argument at once, before the warm-up (policy, index: tens of seconds), rather than
    after it and halfway through the queries."""
    blank = [str(position) for position, query in enumerate(queries, start=1) if not query.strip()]
    if blank:
        verb = "is" if len(blank) == 1 else "are"
        raise CoaugError(f"QUERY {', '.join(blank)} of {len(queries)} {verb} blank: every query needs some text")
    for position, query in enumerate(queries, start=1):
        # Python keeps argument bytes that are not UTF-8 as lone surrogates, which the tokenizer refuses.
        raw = os.fsencode(query)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CoaugError(
                f"QUERY {position} of {len(queries)} is not UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                f"{exc.start + 1}): pass queries in UTF-8"
            ) from None
    if k < 1:
        raise CoaugError(f"k must be >= 1, got {k}")


def cmd_search(params: Params, args: argparse.Namespace) -> None:
    k = args.k if args.k is not None else params.search.k
    check_search_args(args.queries, k)
    require_writable([params.dense.cache_dir] if args.dense else [])  # the queries' embeddings are cached
    from coaug.registry.search import ServedSearch, result_line, result_table

    engine = ServedSearch(params, args.alias or params.search.alias, args.dense)
    for query in args.queries:
        result = engine.search(query, k)
        sys.stdout.write(result_line(result) if args.json else result_table(result))
        sys.stdout.flush()


def cmd_plan(params: Params, args: argparse.Namespace) -> None:
    from coaug.data.beir import require_regular_files
    from coaug.plan import (
        estimate,
        main_job_stages,
        main_targets,
        plan_text,
        read_durations,
        record_durations,
        rest_text,
        stages_to_run,
    )
    from coaug.tracking import store_folders

    if args.main_targets:
        sys.stdout.write(" ".join(main_targets(params)) + "\n")
        return
    if args.record:
        require_writable([params.outputs.reports_dir, *store_folders(params.mlflow)])
        recorded = record_durations(params.mlflow, params.dataset, params.outputs)
        logger.info("recorded the durations of %d stages", len(recorded))
        return
    if "://" not in params.dataset.source:  # `dvc status` reads every file of the source: a FIFO would block it
        require_regular_files(params.dataset.source)
    recorded, machine = read_durations(params.outputs)
    if args.main:
        main, rest = main_job_stages(".", main_targets(params))
        sys.stdout.write(plan_text(estimate(main, recorded), machine, "make pipeline"))
        sys.stdout.write(rest_text(estimate(rest, recorded)))
        return
    sys.stdout.write(plan_text(estimate(stages_to_run("."), recorded), machine))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coaug", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    def add(name: str, func: Callable, help_text: str, description: str) -> argparse.ArgumentParser:
        """``description``: a summary line, then what the stage reads, writes and which params keys it uses,
        kept in short lines (RawDescriptionHelpFormatter prints them as written)."""
        command = sub.add_parser(
            name,
            help=help_text,
            description=textwrap.dedent(description).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.set_defaults(func=func)
        return command

    add(
        "prepare",
        cmd_prepare,
        "validate a BEIR collection, write a normalised copy",
        """
        Validate a BEIR collection and write a normalised copy of it.

        reads   dataset.source: a BEIR folder, or a BEIR zip URL pinned by dataset.sha256
                (downloaded and extracted once into .downloads/ beside dataset.prepared_dir)
        writes  dataset.prepared_dir/: corpus.jsonl, queries.jsonl, qrels/<split>.tsv,
                stats.json (counts, length percentiles, checksum)
        params  dataset

        Every line is checked: JSON, _id/text fields, duplicate ids, qrels header, integer
        scores, ids the corpus or queries lack (up to dataset.max_unknown_qrels are dropped
        with a warning). Bad input fails with one line naming file, line and field.
        """,
    )
    augment = add(
        "augment",
        cmd_augment,
        "augment the corpus and the eval queries with a policy",
        """
        Augment every corpus document and every eval-split query with a policy (resumable).

        reads   dataset.prepared_dir/: corpus.jsonl, queries.jsonl, qrels/<dataset.eval_split>.tsv
                augment.prompts_dir/<format>/<prompt>.txt
                the policy of augmentations.NAME (null: policy.model), cached in policy.cache_dir
        writes  augment.out_dir/NAME/: corpus.jsonl, queries.jsonl, stats.json
                augment.cache_dir/: the generation cache, appended per batch (fsync'd)
        params  augmentations.NAME or trained_augmentations.NAME, policy, generation,
                augment.batch_size, augment.doc_max_tokens, dataset.eval_split

        A document is shown as '{title}. {text}', its text cut to augment.doc_max_tokens.
        Decoding is greedy by default (generation). The cache is keyed by text id, prompt,
        model and decoding, so a killed run resumes where it stopped.
        --shard I/K generates every K-th text from position I into its own cache file and
        writes no outputs; the next run without --shard absorbs the shard files
        (flows/sharded_augment.py runs K shards in parallel when augment.shards > 1).
        """,
    )
    augment.add_argument("--name", required=True, help="a key of `augmentations` or `trained_augmentations`")
    augment.add_argument("--shard", metavar="I/K", help="generate shard I (from 0) of K into the cache only")
    train = add(
        "train",
        cmd_train,
        "train the policy with RL, register it as @challenger",
        """
        Train the policy with bidirectional RL (METHOD.md 3-6) and register it as @challenger.

        reads   dataset.prepared_dir/: corpus, queries, qrels of train.split and
                train.validation_split (validation batches and the dev curve)
                the starting policy: train.policy (null: policy.model), cached in policy.cache_dir
                augment.prompts_dir/<train.format>/<train.query_prompt, train.doc_prompt>.txt
                outputs.indexes_dir/<train.reward_system> and /<each of train.curve_systems>
                train_outputs.checkpoints_dir/VARIANT/: the newest checkpoint, to resume
        writes  train_outputs.policies_dir/VARIANT/: the trained policy
                train_outputs.checkpoints_dir/VARIANT/: every train.checkpoint_every steps
                train_outputs.reports_dir/VARIANT.json, .curves.csv, .validation.csv,
                  .dev_curve.csv, .curves.png
                MLflow: per-step curves, sample tables; for registry.variant only, a new
                  version of registry.model_name with alias @challenger
        params  train with train_variants.VARIANT on top, registry, policy.model,
                generation.max_new_tokens, generation.repetition_penalty,
                generation.do_sample, augment.batch_size, augment.doc_max_tokens,
                dataset.eval_split (must differ from train.validation_split),
                systems, augmented_systems, bm25, dense, retrieval (the dev curve
                decodes and searches as augment and evaluate do)

        Each step: composite batches of queries and their documents, train.rollouts sampled
        rollouts per text, in-batch BM25 (or dense) similarity or the real index
        (train.reward), sampled NDCG@10 rewards, centred group advantages scaled by role,
        clip-higher PPO. Every train.eval_every steps (and at step 0) the policy is scored on
        fixed validation batches: greedy rollouts, no update, in-batch NDCG@10 per role.
        A checkpoint trained with other train settings, starting policy or dataset is
        deleted and training starts from step 0. A run that applied no update (every
        advantage 0) fails instead of registering an unchanged policy.
        With train.num_processes > 1 it relaunches itself through `accelerate launch`.
        """,
    )
    train.add_argument("--variant", help="a key of train_variants in params.yaml (default: registry.variant)")
    validate = add(
        "validate",
        cmd_validate,
        "score any policy on the training's fixed validation batches",
        """
        Score any policy on the fixed validation batches that training of --variant scores.

        reads   POLICY: a Hugging Face folder, a .gguf, or a registry URI
                (models:/coaug-policy/3, models:/coaug-policy@champion)
                what `coaug train --variant VARIANT` reads, except checkpoints and starting policy
        writes  standard output: JSON (in-batch NDCG@10 per query, mean reward per role,
                dev-curve NDCG@10 per query); MLflow: a run with the same numbers
        params  as `coaug train` (train with train_variants.VARIANT on top, ...),
                but train.policy is replaced by POLICY

        One greedy rollout per text, no update.
        """,
    )
    validate.add_argument("--policy", required=True, help="policy spec, as policy.model accepts")
    validate.add_argument("--variant", help="whose train settings and validation batches (default: registry.variant)")
    index = add(
        "index",
        cmd_index,
        "build a system's Lucene BM25 or faiss index from its corpus",
        """
        Build the Lucene BM25 or faiss index of SYSTEM from its corpus.

        reads   systems.SYSTEM.corpus, or for an augmented system dataset.prepared_dir/corpus.jsonl
                and augment.out_dir/<augmented_systems.SYSTEM.augmentation>/corpus.jsonl
                dense.cache_dir/: cached embeddings (dense only)
        writes  outputs.indexes_dir/SYSTEM/
                dense.cache_dir/: new embeddings, keyed by text hash (dense only)
        params  systems.SYSTEM or augmented_systems.SYSTEM, bm25.index_threads,
                dense.encoder, dense.max_seq_length, dense.batch_size

        Retrievers: bm25_flat (title + text in one Lucene field),
        bm25_multifield (title and text as separate fields),
        dense (dense.encoder embeddings, normalised, faiss inner product).
        An augmented system joins each document's augmentation as coaug.retrieval.combine says.
        """,
    )
    index.add_argument("--system", required=True, help="a key of `systems` or `augmented_systems` in params.yaml")
    evaluate = add(
        "evaluate",
        cmd_evaluate,
        "retrieve for the eval split, write a run and metrics",
        """
        Retrieve for every query of the eval split, write the TREC run and score it.

        reads   outputs.indexes_dir/SYSTEM/
                the system's queries (systems.SYSTEM.queries, or the prepared queries and
                their augmentation in augment.out_dir/<augmentation>/queries.jsonl)
                dataset.prepared_dir/: qrels/<dataset.eval_split>.tsv, stats.json (checksum)
        writes  outputs.runs_dir/SYSTEM.trec
                outputs.metrics_dir/SYSTEM.json (evaluation.metrics, a DVC metric labelled
                with the split and the dataset checksum), SYSTEM.perquery.tsv
                dense.cache_dir/: the queries' embeddings (dense only)
        params  systems.SYSTEM or augmented_systems.SYSTEM, retrieval, evaluation.metrics,
                dataset.eval_split, bm25.k1, bm25.b, bm25.multifield_weights, bm25.search_*,
                dense.encoder, dense.max_seq_length, dense.batch_size

        retrieval.hits documents per query, self-hits removed; scored with trec_eval
        semantics (ir-measures / pytrec_eval).
        """,
    )
    evaluate.add_argument("--system", required=True, help="a key of `systems` or `augmented_systems` in params.yaml")
    report = add(
        "report",
        cmd_report,
        "compare systems: tables, a plot, paired tests",
        """
        Compare the evaluated systems: tables, a plot and paired tests against the baseline.

        reads   outputs.metrics_dir/<system>.json and .perquery.tsv of every system
                dataset.prepared_dir/stats.json (the checksum the metrics must carry)
                dvc.lock: what each evaluate stage and those upstream of it recorded
        writes  outputs.reports_dir/: summary.json, results.md, comparison.png, headline.csv
                outputs.results_page (docs/results.md)
                outputs.readme: the headline table between its results markers
        params  evaluation, systems, augmented_systems, dataset.name (the title),
                dataset.eval_split, main_job, trained_augmentations (which systems
                `make pipeline` makes)

        A paired t-test and a paired bootstrap on evaluation.significance_metric against
        evaluation.baseline and between the evaluation.comparisons pairs, Holm-adjusted.
        Metrics of another dataset or eval split are left out with the reason (the
        baseline's fail the report): a report never mixes datasets. So are metrics that
        dvc.lock does not record as current (another file, or made before an input was
        remade): their rows name `make experiments` (systems outside main_job) or their
        `dvc repro` instead of a value.
        """,
    )
    report.add_argument("--systems", nargs="*", help="systems to include (default: all in params.yaml)")
    add(
        "promote",
        cmd_promote,
        "promote @challenger if it beats @champion",
        """
        Champion/challenger: promote the registry's @challenger if it beats the @champion.

        reads   the registry (mlflow.tracking_uri): registry.model_name @challenger, @champion
                and the champion's recorded evaluation
                outputs.metrics_dir/<promotion.system>.perquery.tsv and
                <evaluation.baseline>.perquery.tsv
                outputs.indexes_dir/<each of promotion.serve_systems>
        writes  outputs.reports_dir/promotion.json: the decision and its reason
                the registry: eval.* and promotion.* tags on the challenger's version;
                  on a promotion, alias @champion
                promotion.serving_dir/: on a promotion, the served indexes and a manifest
        params  promotion, registry, evaluation.baseline, dataset.eval_split, policy.model,
                augment.prompts_dir, bm25, dense, systems, augmented_systems,
                augmentations, trained_augmentations

        Without a champion the challenger is compared with evaluation.baseline. It is
        promoted only if its mean NDCG@10 gain is at least promotion.min_delta with a paired
        t-test p <= promotion.max_p_value.
        """,
    )
    search = add(
        "search",
        cmd_search,
        "search the served champion with ad-hoc queries",
        """
        Search the served champion with ad-hoc queries.

        reads   promotion.serving_dir/: the manifest and the served indexes (`coaug promote`)
                the registry version that --alias points at (mlflow.tracking_uri), once
                the prepared corpus the manifest names (for titles)
        writes  standard output: per query the top-k hits (rank, doc id, score, title)
                and the augmented query; with --json one JSON object per query
                dense.cache_dir/: the queries' embeddings (--dense only)
        params  search.alias, search.k, policy.cache_dir, policy.dtype, policy.quantize,
                policy.packed_weights, generation, bm25.search_*, dense.batch_size

        Each query is augmented with the policy and the served query prompt and joined as
        the served system does.
        """,
    )
    search.add_argument("queries", nargs="+", metavar="QUERY", help="one or more queries")
    search.add_argument("--alias", help="registry alias to serve (default: search.alias)")
    search.add_argument("--k", type=int, help="hits per query (default: search.k)")
    search.add_argument("--dense", action="store_true", help="search the served dense index instead of BM25")
    search.add_argument(
        "--json", action="store_true", help="one JSON object per query: query, augmentation, hits, seconds"
    )
    plan = add(
        "plan",
        cmd_plan,
        "which stages `dvc repro` will run, and for how long",
        """
        Say which DVC stages `dvc repro` will run here and roughly how long each takes.

        reads   dvc.yaml, dvc.lock and the stages' deps (`dvc status`)
                outputs.reports_dir/stage_seconds.json: each stage's recorded duration
                with --record: the finished MLflow runs of dataset.name's experiment
        writes  standard output: the changed stages and everything downstream, each with
                its duration, and the total
                with --main: those of the main job (`make pipeline` prints this first),
                then a line on what `make experiments` would add
                with --main-targets: the main job's DVC targets on one line
                with --record: outputs.reports_dir/stage_seconds.json, nothing printed
        params  none beyond those paths; with --main or --main-targets main_job, systems,
                augmented_systems, trained_augmentations, train_variants, promotion;
                with --record dataset.name (the experiment)

        The main job (params.yaml main_job) evaluates every plain system and the systems
        its augmentations and train variants make, and promotes: `make pipeline` runs
        `dvc repro` of its targets, then `dvc repro --single-item report`. Run --record
        after a full pipeline run and commit the file.
        """,
    )
    plan.add_argument("--record", action="store_true", help="record the durations of the last run from MLflow")
    job = plan.add_mutually_exclusive_group()
    job.add_argument("--main", action="store_true", help="only the main job's stages (what `make pipeline` runs)")
    job.add_argument("--main-targets", action="store_true", help="print the main job's DVC targets, for the Makefile")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        params = P.load_params(args.params)
        args.func(params, args)
    except CoaugError as exc:
        print(f"coaug {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
