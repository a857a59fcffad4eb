"""The digit-tile tasks (labels by construction, shapes, determinism, honest splits) and the
limits benchmark (plans, the json schema, the table, the plot, one real training)."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

from eanet_course import tasks
from eanet_course.bench import limits

# Tiles whose pixels say their digit: tile c is filled with (c + 1) / 10, two instances each.
TILES = np.repeat((np.arange(10, dtype=np.float32) + 1)[:, None, None] * np.ones((8, 8)), 2, 0)
TILE_LABELS = np.repeat(np.arange(10), 2)


def _read(images: np.ndarray, grid: int) -> tuple[np.ndarray, np.ndarray]:
    """Digits ``(M, N)`` and marker flags ``(M, N)`` read back from images made of TILES."""
    cells = images.reshape(len(images), grid, 8, grid, 8, 2).transpose(0, 1, 3, 2, 4, 5)
    cells = cells.reshape(len(images), grid * grid, 8, 8, 2)
    assert np.all(cells.min(axis=(2, 3)) == cells.max(axis=(2, 3))), "a tile is not uniform"
    digits = np.rint(cells[:, :, 0, 0, 0] * 10).astype(int) - 1
    return digits, cells[:, :, 0, 0, 1] == 1.0


def _expected(task: str, digits: np.ndarray, marked: np.ndarray) -> np.ndarray:
    """Each task's label computed from the decoded grid, independently of the generator."""
    out = []
    for row, marks in zip(digits, marked):
        if task == "count":
            out.append(int(np.sum(row == 0)))
        elif task == "repeat":
            out.append(int(len(set(row)) < len(row)))
        elif task == "lookup":
            (pointer,) = np.flatnonzero(marks)
            others = [d for j, d in enumerate(row) if j != pointer]
            out.append(int(others[row[pointer]]))
        else:
            a, b = row[marks]
            out.append(int(a == b))
    return np.array(out)


@pytest.mark.parametrize("task, grid", [("count", 2), ("count", 4), ("repeat", 2),
                                        ("repeat", 3), ("lookup", 2), ("lookup", 3),
                                        ("lookup", 4),
                                        ("relation", 2), ("relation", 4)])
def test_labels_are_what_the_grid_shows(task, grid):
    images, labels = tasks.make_images(task, grid, 300, TILES, TILE_LABELS, seed=3)
    assert images.shape == (300, 8 * grid, 8 * grid, 2) and images.dtype == np.float32
    assert labels.shape == (300,) and labels.dtype == np.int64
    digits, marked = _read(images, grid)
    np.testing.assert_array_equal(labels, _expected(task, digits, marked))
    assert marked.sum(axis=1).tolist() == [{"lookup": 1, "relation": 2}.get(task, 0)] * 300
    # every label occurs, none dominates (the labels are balanced by construction)
    counts = np.bincount(labels, minlength=tasks.TASKS[task].num_classes)
    assert counts.min() > 0 and counts.max() < 300 * 2.5 / len(counts)


def test_repeat_has_at_most_one_pair_and_its_negatives_none():
    images, labels = tasks.make_images("repeat", 3, 200, TILES, TILE_LABELS, seed=0)
    digits, _ = _read(images, 3)
    distinct = np.array([len(set(row)) for row in digits])
    np.testing.assert_array_equal(distinct, np.where(labels == 1, 8, 9))


def test_the_same_seed_gives_the_same_images_and_another_seed_others():
    first = tasks.make_images("relation", 3, 50, TILES, TILE_LABELS, seed=7)
    again = tasks.make_images("relation", 3, 50, TILES, TILE_LABELS, seed=7)
    other = tasks.make_images("relation", 3, 50, TILES, TILE_LABELS, seed=8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])


def test_train_and_test_images_are_cut_from_separate_tile_splits():
    from eanet_course.data import load_digits

    (train_tiles, _), (test_tiles, _) = load_digits()
    data = tasks.make_task("count", 2, 40, 40, seed=0)
    assert data.num_patches == 4 and data.x_train.shape == (40, 16, 16, 2)

    def tiles_of(images):
        cells = images[..., 0].reshape(-1, 2, 8, 2, 8).transpose(0, 1, 3, 2, 4).reshape(-1, 64)
        return {tuple(np.rint(c * 255).astype(int)) for c in cells}

    split = {name: {tuple(t.reshape(-1).astype(int)) for t in tiles}
             for name, tiles in (("train", train_tiles), ("test", test_tiles))}
    assert tiles_of(data.x_train) <= split["train"]
    assert tiles_of(data.x_test) <= split["test"]
    assert not tiles_of(data.x_test) & (split["train"] - split["test"])


@pytest.mark.parametrize("args, message", [
    (("sort", 3, 10), "Unknown task"),
    (("repeat", 4, 10), r"N = grid \* grid <= 10"),
    (("lookup", 1, 10), "grid=1 must be an integer >= 2"),
    (("count", 2, 0), "size=0"),
])
def test_impossible_tasks_are_refused_with_the_fix(args, message):
    with pytest.raises(ValueError, match=message):
        tasks.make_images(*args, TILES, TILE_LABELS)


def test_tiles_must_cover_every_digit():
    with pytest.raises(ValueError, match="every digit"):
        tasks.make_images("count", 2, 5, TILES[:18], TILE_LABELS[:18])
    with pytest.raises(ValueError, match="one digit per tile"):
        tasks.make_images("count", 2, 5, TILES, TILE_LABELS[:5])


# ------------------------------------------------------------------------------------------
# The benchmark


@pytest.mark.parametrize("changes, message", [
    ({"grids": {}}, "grids is empty"),
    ({"grids": {"sort": (2,)}}, "Unknown task"),
    ({"grids": {"repeat": (4,)}}, "g\\*g <= 10"),
    ({"grids": {"count": (2, 2)}}, "each grid side once"),
    ({"memory_units": (0,)}, "memory_units"),
    ({"seeds": (1, 1)}, "seeds"),
    ({"models": ("mlp",)}, "models"),
    ({"train_size": 100}, "multiple of batch_size"),
    ({"embed_dim": 31}, "not divisible"),
])
def test_a_bad_plan_is_refused_with_the_reason(changes, message):
    with pytest.raises(ValueError, match=message):
        limits.Plan(**{"grids": {"count": (2,)}, **changes})


def test_the_quick_plan_is_part_of_the_full_map():
    for task, grids in limits.QUICK.grids.items():
        assert set(grids) <= set(limits.FULL.grids[task])
    assert set(limits.QUICK.memory_units) <= set(limits.FULL.memory_units)
    assert len(limits.QUICK.seeds) == len(limits.FULL.seeds) == 3


def _fake_train(plan, data, model, memory_units, seed):
    """A stand-in trainer whose accuracy encodes its arguments (to test the bookkeeping)."""
    return {"external": 0.9, "external_softmax": 0.5, "self": 0.6, "self_matched": 0.7}[model] \
        + memory_units / 1000 + seed / 100 + data.num_patches / 10_000


def test_run_writes_the_schema_a_table_and_a_plot(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(limits, "_train", _fake_train)
    plan = limits.Plan(grids={"repeat": (2, 3)}, memory_units=(4, 16), train_size=64,
                       test_size=16)
    results = limits.run(out_dir=tmp_path, plan=plan)
    saved = json.loads((tmp_path / "limits.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert [(r["task"], r["N"], r["S"]) for r in saved["tasks"]] == [
        ("repeat", 4, 4), ("repeat", 4, 16), ("repeat", 9, 4), ("repeat", 9, 16)]
    for row in saved["tasks"]:
        assert set(row) == {"task", "N", "S", "chance", *limits.MODELS}
        for model in limits.MODELS:
            assert set(row[model]) == {"accuracy", "seeds"} and row[model]["seeds"] == [0, 1, 2]
        assert row["external"]["accuracy"] == pytest.approx(
            [0.9 + row["S"] / 1000 + seed / 100 + row["N"] / 10_000 for seed in (0, 1, 2)])
        # self-attention has no S: the same three runs on every S row
        assert row["self"]["accuracy"] == pytest.approx(
            [0.6 + seed / 100 + row["N"] / 10_000 for seed in (0, 1, 2)])
        # the matched self-attention is matched at each S: its own runs per S row
        assert row["self_matched"]["accuracy"] == pytest.approx(
            [0.7 + row["S"] / 1000 + seed / 100 + row["N"] / 10_000 for seed in (0, 1, 2)])
        assert row["chance"] == 0.5
    table = (tmp_path / "limits.txt").read_text()
    assert table.strip() in capsys.readouterr().out
    assert "repeat     9  16    0.50" in table
    assert (tmp_path / "limits.png").read_bytes()[:4] == b"\x89PNG"
    assert limits.load(tmp_path) == saved
    assert limits.load(tmp_path / "nothing") is None


def test_gaps_are_computed_from_the_seed_means():
    row = {"task": "repeat", "N": 9, "S": 16, "chance": 0.5,
           "external": {"accuracy": [0.8, 0.9, 0.7]}, "self": {"accuracy": [0.6, 0.6, 0.6]}}
    close = {**row, "N": 4, "self": {"accuracy": [0.7, 0.7, 0.7]}}
    found = limits.gaps({"tasks": [close, row]})
    assert [(g["N"], round(g["difference"], 6)) for g in found] == [(9, 0.2)]
    assert "repeat N=9 S=16 (+0.200)" in limits.summary({"tasks": [close, row]})
    assert "differ by 15 points or more: none." in limits.summary({"tasks": [close]})
    assert statistics.fmean(row["external"]["accuracy"]) == pytest.approx(found[0]["external"])


def test_run_wants_a_plan_object(tmp_path):
    with pytest.raises(TypeError, match="Plan"):
        limits.run(out_dir=tmp_path, plan={"repeat": (3,)})


def test_a_real_training_learns_the_control_task_beyond_chance():
    """The control (count the zeros) needs no talk between patches: even the plain softmax
    learns it. A trainer that did not train would stay at chance (0.25)."""
    plan = limits.Plan(grids={"count": (2,)}, memory_units=(8,), seeds=(0,), train_size=1024,
                       test_size=256, epochs=6, models=("external_softmax",))
    results = limits.sweep(plan, progress=None)
    (accuracy,) = results["tasks"][0]["external_softmax"]["accuracy"]
    assert accuracy > 0.5


def test_a_rerun_resumes_and_shards_split_the_trainings(monkeypatch, tmp_path):
    calls = []

    def counting(plan, data, model, memory_units, seed):
        calls.append((data.task.name, data.grid, model, memory_units, seed))
        return _fake_train(plan, data, model, memory_units, seed)

    monkeypatch.setattr(limits, "_train", counting)
    plan = limits.Plan(grids={"relation": (2,)}, memory_units=(4,), seeds=(0, 1),
                       train_size=64, test_size=16, extra=(("relation", 2, 8),))
    assert len(plan.trainings()) == 2 * (4 + 3)  # self once per seed, the others per S
    nothing = limits.run(out_dir=tmp_path, plan=plan, train=False)
    assert not calls and {r["verdict"] for r in limits.regimes(nothing)} == {"not run"}
    first = limits.run(out_dir=tmp_path, plan=plan, shard=(0, 2))
    assert len(calls) == 7
    # half the map: every row says how many seeds ran, missing runs are not invented
    ran = {(r["S"], m): r[m]["seeds"] for r in first["tasks"] for m in limits.MODELS}
    assert sum(len(seeds) for seeds in ran.values()) < 2 * len(ran)
    assert "not run" in limits.summary(first) or "(1 run)" in limits.summary(first)
    limits.run(out_dir=tmp_path, plan=plan, shard=(1, 2))
    assert len(calls) == 14 and len(set(calls)) == 14
    again = limits.run(out_dir=tmp_path, plan=plan)  # nothing left to train
    assert len(calls) == 14
    assert all(r[m]["seeds"] == [0, 1] for r in again["tasks"] for m in limits.MODELS)
    # a damaged result is trained again, not trusted
    (broken,) = [p for p in (tmp_path).glob("limits-runs-*/relation-N4-self-seed1.json")]
    broken.write_text("{")
    limits.run(out_dir=tmp_path, plan=plan)
    assert calls[-1] == ("relation", 2, "self", 0, 1) and len(calls) == 15
    with pytest.raises(ValueError, match="shard"):
        limits.sweep(plan, progress=None, shard=(2, 2))


def test_rows_not_run_and_rows_not_possible_are_marked():
    plan = limits.Plan(grids={"repeat": (2, 3), "count": (4,)}, memory_units=(16,))
    assert plan.not_possible() == [{"task": "repeat", "N": 16, "why": (
        "repeat needs N <= 10: with 16 tiles of 10 digits some digit always repeats")}]
    empty = {"tasks": limits._rows(plan, {}), "not_possible": plan.not_possible()}
    table = limits.summary(empty)
    assert table.count("not run") == 3 * len(limits.MODELS)
    assert "repeat    16   not possible" in table
    assert {r["verdict"] for r in limits.regimes(empty)} == {"not run"}
    assert "repeat" in limits.FULL.grids and 4 not in limits.FULL.grids["repeat"]
    assert {g for grids in limits.FULL.grids.values() for g in grids} == {2, 3, 4}


def test_regimes_follow_the_means_and_the_spread():
    def row(ext, other, chance=0.5):
        return {"task": "t", "N": 4, "S": 16, "chance": chance,
                "external": {"accuracy": ext}, "self_matched": {"accuracy": other}}
    verdicts = [r["verdict"] for r in limits.regimes({"tasks": [
        row([0.9, 0.92, 0.91], [0.6, 0.62, 0.61]),    # far apart, tight
        row([0.6, 0.9, 0.75], [0.6, 0.62, 0.61]),     # apart on average, but noisy
        row([0.52, 0.5, 0.51], [0.51, 0.5, 0.52]),    # both at chance
        row([0.6], [0.95]),                           # one run each
    ]})]
    assert verdicts == ["external ahead", "level", "neither learned", "self ahead"]


def test_regimes_also_judge_against_the_standard_self_attention():
    row = {"task": "t", "N": 4, "S": 16, "chance": 0.1,
           "external": {"accuracy": [0.3, 0.9, 0.6]},       # noisy: level with both
           "self_matched": {"accuracy": [0.62, 0.65, 0.68]},
           "self": {"accuracy": [0.85, 0.86, 0.87]}}
    tight = {**row, "external": {"accuracy": [0.60, 0.61, 0.62]}}  # self is ahead of it
    noisy, ahead = limits.regimes({"tasks": [row, tight]})
    assert (noisy["verdict"], noisy["standard"]) == ("level", "level")
    assert (ahead["verdict"], ahead["standard"]) == ("level", "self ahead")
    assert abs(ahead["standard_self"] - 0.86) < 1e-9
    only_standard = limits.regimes({"tasks": [{**row, "self_matched": {"accuracy": []}}]})[0]
    assert only_standard["against"] == "self" and "standard" not in only_standard


def test_the_matched_self_attention_holds_about_the_external_layers_weights():
    for s in (4, 16, 64):
        k = limits.matched_key_dim(limits.FULL, s)
        ext = limits.attention_weights(limits.FULL, "external", s)
        matched = limits.attention_weights(limits.FULL, "self", s, k)
        for other in (k - 1, k + 1):
            if other >= 1:  # no other key_dim comes closer
                assert abs(matched - ext) <= abs(
                    limits.attention_weights(limits.FULL, "self", s, other) - ext)
        assert abs(matched - ext) / ext < 0.07
