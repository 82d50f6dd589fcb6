"""`coaug plan`: what `make pipeline` will run and how long each stage took on the recorded machine."""

from __future__ import annotations

from coaug.plan import estimate, format_duration, plan_text


def test_a_stage_without_a_record_takes_the_median_of_its_foreach_siblings():
    recorded = {"prepare": 12.0, "evaluate@a": 10.0, "evaluate@b": 30.0, "evaluate@c": 40.0, "train": 700.0}
    assert estimate(["prepare", "evaluate@b", "evaluate@new", "train@coaug"], recorded) == [
        ("prepare", 12.0), ("evaluate@b", 30.0), ("evaluate@new", 30.0), ("train@coaug", None),
    ]  # fmt: skip


def test_plan_text_counts_lists_and_totals_the_stages():
    text = plan_text([("prepare", 12.4), ("train@coaug", 3725.0), ("report", None)], "Intel Xeon, 2 cores")
    assert text == (
        "dvc repro will run 3 stage(s); durations as recorded on Intel Xeon, 2 cores:\n"
        "  prepare                                          12 s\n"
        "  train@coaug                                  62 min 05 s\n"
        "  report                                              ?\n"
        "  total ~62 min 17 s + 1 stage(s) never recorded\n"
    )
    assert plan_text([], "x") == "dvc repro: every stage is up to date, nothing to run\n"
    assert format_duration(59.6) == "1 min 00 s"
