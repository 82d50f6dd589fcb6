"""A git + DVC copy of this project pointed at the tiny BEIR fixture, with a tiny local policy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import REPO
from .tiny_models import build_tiny_word_llama


def make_project(root: Path, source: Path) -> Path:
    """A git + DVC project with this repo's dvc.yaml and code, pointed at a tiny dataset."""
    root.mkdir()
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(REPO / "coaug", root / "coaug", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "prompts", root / "prompts")
    # A dev split (a copy of test's judgements) for the training's validation batches.
    shutil.copytree(source, root / "beir")
    shutil.copy(root / "beir" / "qrels" / "test.tsv", root / "beir" / "qrels" / "dev.tsv")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"].update(name="tiny", source="beir", prepared_dir="data/tiny", splits=["dev", "test"])
    for system in params["systems"].values():
        system.update(corpus="data/tiny/corpus.jsonl", queries="data/tiny/queries.jsonl")
    params["dense"]["cache_dir"] = str(root / ".cache" / "embeddings")
    # A tiny local policy keeps the augment and train stages to seconds.
    params["policy"].update(
        model=str(build_tiny_word_llama(root / "tiny-policy")), cache_dir=str(root / ".cache" / "policies")
    )
    params["generation"]["max_new_tokens"] = 4
    params["augment"]["doc_max_tokens"] = 16
    # 4 rollouts a text: with 2, a step's random draws can give every rollout of a text the same reward (every
    # advantage 0, nothing to train), which the sampled stream of one seed did.
    params["train"].update(
        split="test",
        steps=1,
        queries_per_step=3,
        k_pos=1,
        k_randneg=1,
        rollouts=4,
        max_new_tokens=4,
        validation_batches=1,
        eval_every=1,
    )
    # One train variant (the registered one, the main job's only one) and its augmentation.
    params["train_variants"] = {"coaug": params["train_variants"]["coaug"]}
    params["main_job"]["train_variants"] = ["coaug"]
    params["trained_augmentations"] = {"trained_sparse": params["trained_augmentations"]["trained_sparse"]}
    # The trained systems are the ones `promote` evaluates and serves; the untrained ones are the indexes of the
    # training's index reward and dev curve (train.reward_system, train.curve_systems: train@ deps).
    kept = ("both_untrained_flat", "both_untrained_multifield", "both_coaug_flat", "both_coaug_dense")
    params["augmented_systems"] = {name: params["augmented_systems"][name] for name in kept}
    # The README's headline table names systems: only those the tiny project has.
    defined = {*params["systems"], *kept}
    params["evaluation"]["headline"] = [name for name in params["evaluation"]["headline"] if name in defined]
    # The dense-setting pass serves only the dense-reward variant, which the tiny project does not train.
    del params["augmentations"]["untrained_denseprompt"]
    # Three test queries cannot make a t-test significant: any challenger that does not lose to BM25 is served.
    params["promotion"].update(min_delta=0.0, max_p_value=1.0)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=root, check=True)
    return root
