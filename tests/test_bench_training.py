"""bench train against the machine's limit: FLOPs counted from the graph, matmul rate, trace."""

from __future__ import annotations

import json
import math

import keras
import pytest
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from eanet_course.bench import flops, training
from eanet_course.bench.keras_example import build_keras_example
from eanet_course.cli import main
from eanet_course.config import get_profile
from eanet_course.models import build_eanet


def _dense_model(input_shape, units):
    inputs = keras.Input(shape=input_shape)
    return keras.Model(inputs, keras.layers.Dense(units, name="dense")(inputs), name="m")


def test_dense_counts_two_flops_per_multiply_add():
    # (3, 4, 6) tokens of 6 channels to 5: 3*4*6*5 multiply-adds per image.
    counted = flops.forward_flops(_dense_model((3, 4, 6), 5), batch_size=2)
    assert counted == {"dense": 2 * 2 * 3 * 4 * 6 * 5}


def test_einsum_is_counted():
    inputs = keras.Input(shape=(7, 6))
    outputs = keras.layers.EinsumDense("bnd,de->bne", output_shape=(7, 5), name="mix")(inputs)
    model = keras.Model(inputs, outputs, name="m")
    assert flops.forward_flops(model, batch_size=3) == {"mix": 2 * 3 * 7 * 6 * 5}


def _eanet_forward_flops_by_hand(c) -> int:
    """The paper's products, written out from the config: one image, forward."""
    n, d, patch = c.num_patches, c.embed_dim, c.patch_size**2 * c.channels
    heads, head_dim = c.num_heads * c.dim_coefficient, c.embed_dim // c.num_heads
    s = c.memory_units or d // c.dim_coefficient
    block = (d * d * c.dim_coefficient          # to_heads
             + heads * head_dim * s * 2         # memory_key and memory_value, every head
             + d * c.dim_coefficient * d        # output_projection
             + 2 * d * c.mlp_dim)               # the MLP's two Dense layers
    macs = (n * patch * patch                   # extract_patches: a one-hot convolution
            + n * patch * d                     # patch embedding
            + c.num_blocks * n * block + d * c.num_classes)
    return 2 * macs


def test_the_example_counts_as_by_hand_and_the_course_by_layer():
    config = get_profile("paper")
    expected = _eanet_forward_flops_by_hand(config)
    assert sum(flops.forward_flops(build_keras_example(config)).values()) == expected
    assert 0.19e9 < expected < 0.21e9  # "about 0.2 GFLOP per image", as the docs say
    assert flops.training_step_flops(build_keras_example(config), 4) == 3 * 4 * expected
    course = flops.forward_flops(build_eanet(config))
    blocks = [f"block_{i}" for i in range(config.num_blocks)]
    assert {path.split("/")[0] for path in course} == {
        "patches", "patch_embedding", *blocks, "classifier"}
    # The same function: the course may multiply its weights together first, never do more.
    assert sum(course.values()) <= expected


def test_matmul_rate_is_a_positive_rate_and_refuses_nonsense():
    rate = flops.matmul_rate(n=128, repeats=2)
    assert math.isfinite(rate) and rate > 1e6  # any CPU does a million FLOP/s
    with pytest.raises(ValueError, match="n >= 1"):
        flops.matmul_rate(n=0)


def _space(events):
    """An XSpace with one line of op events ``(name, type, start_ps, end_ps)``."""
    space = xplane_pb2.XSpace()
    plane = space.planes.add(name="/host:CPU")
    line = plane.lines.add(name="tf_Compute")
    for i, (name, kind, start, end) in enumerate(events, start=1):
        plane.event_metadata[i].id = i
        plane.event_metadata[i].name = f"{name}:{kind}" if kind else name
        plane.event_metadata[i].display_name = kind
        line.events.add(metadata_id=i, offset_ps=start, duration_ps=end - start)
    return space


def test_op_time_is_self_time_by_type(tmp_path):
    folder = tmp_path / "plugins" / "profile" / "run"
    folder.mkdir(parents=True)
    space = _space([
        ("call", "PartitionedCall", 0, 11_000_000),      # 11 us, of which 7 us in its ops
        ("a/MatMul", "MatMul", 1_000_000, 5_000_000),
        ("a/Softmax", "Softmax", 6_000_000, 9_000_000),
        ("ExecutorState::Process", "", 0, 10_000_000),   # not an op: no type
        ("b/MatMul_1", "MatMul", 20_000_000, 22_000_000),
    ])
    (folder / "host.xplane.pb").write_bytes(space.SerializeToString())
    seconds = training.op_time_by_type(tmp_path)
    assert list(seconds) == ["MatMul", "PartitionedCall", "Softmax"]
    assert seconds["MatMul"] == pytest.approx(6e-6)
    assert seconds["Softmax"] == pytest.approx(3e-6)
    assert seconds["PartitionedCall"] == pytest.approx(4e-6)


def test_op_time_without_a_trace_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="bench train --trace"):
        training.op_time_by_type(tmp_path)


def test_run_reports_the_share_of_the_matmul_rate(tmp_path, monkeypatch):
    # The paper architecture shrunk to seconds; the ci training cut to one epoch.
    small = {"paper": get_profile("paper").replace(num_blocks=1, batch_size=16),
             "ci": get_profile("ci").replace(epochs=1)}
    monkeypatch.setattr(training, "get_profile", small.__getitem__)
    results = training.run(quick=True, out_dir=tmp_path, trace_dir=tmp_path / "trace")
    assert results == json.loads((tmp_path / "training.json").read_text())
    ips, step = results["course_images_per_s"], results["step_flops"]
    assert step == flops.training_step_flops(build_eanet(small["paper"]), 16)
    assert results["course_flops_per_s"] == pytest.approx(step * ips / 16)
    assert results["matmul_share"] == pytest.approx(
        results["course_flops_per_s"] / results["matmul_flops_per_s"])
    assert 0 < results["matmul_share"] < 1
    assert results["course_cpu_s_per_step"] > 0 and results["cpu_ratio"] == pytest.approx(
        results["example_cpu_s_per_step"] / results["course_cpu_s_per_step"])
    assert results["example_step_flops"] == 3 * 16 * _eanet_forward_flops_by_hand(small["paper"])
    # One round (quick): its figures are the round's, a spread of one.
    for key in ("course_images_per_s", "example_images_per_s", "ratio", "matmul_share"):
        spread = results["spread"][key]
        assert spread["low"] == spread["median"] == spread["high"] == pytest.approx(results[key])
    assert results["load_average"]["low"] <= results["load_average"]["high"]
    ops = results["trace"]["op_seconds_by_type"]
    # oneDNN's kernels keep their own names (_MklMatMul, _MklSoftmax) in the trace.
    assert any("MatMul" in kind and t > 0 for kind, t in ops.items())
    assert any("Softmax" in kind for kind in ops)
    assert list((tmp_path / "trace" / "plugins" / "profile").glob("*/*.xplane.pb"))


def test_rounds_give_medians_and_their_spread(monkeypatch, tmp_path):
    # Four rounds with made-up step times: the figures are medians over the rounds, the ratio
    # is taken side by side in each round.
    walls = iter([2.0, 1.0, 4.0, 1.0, 2.0, 2.0, 3.0, 1.5])  # example, course, per round
    monkeypatch.setattr(training, "get_profile", {
        "paper": get_profile("paper").replace(batch_size=4),
        "ci": get_profile("ci").replace(epochs=1)}.__getitem__)

    def timed(self, steps, callbacks=()):
        times = training._StepTimes()
        wall = next(walls)
        times.seconds, times.cpu_seconds = [wall] * steps, [wall] * steps
        return times

    monkeypatch.setattr(training._Recipe, "time", timed)
    monkeypatch.setattr(training, "matmul_rate", lambda: 1e9)
    monkeypatch.setattr(training, "_train_ci", lambda config: type("R", (), {
        "test_metrics": {"accuracy": 0.5}, "wall_time_s": 1.0, "history": {"loss": [1.0]}})())
    for recipe in ("_course", "_keras_example"):  # no model: the timings above stand in
        monkeypatch.setattr(training, recipe, lambda config, x, y: training._Recipe(None, None))
    monkeypatch.setattr(training, "training_step_flops", lambda model, batch: 1e9)
    results = training.run(quick=False, out_dir=tmp_path)
    assert results["rounds"] == 4
    assert results["spread"]["ratio"] == {"median": 2.0, "low": 1.0, "high": 4.0}
    assert results["ratio"] == 2.0
    assert results["spread"]["course_images_per_s"]["low"] == pytest.approx(4 / 2.0)


def test_cli_passes_trace_to_bench_train_only(monkeypatch, tmp_path, capsys):
    calls = []
    monkeypatch.setattr(training, "run", lambda **kwargs: calls.append(kwargs))
    assert main(["bench", "train", "--quick", "--trace", str(tmp_path)]) == 0
    assert calls == [{"quick": True, "out_dir": None, "trace_dir": str(tmp_path)}]
    assert main(["bench", "train", "--ship"]) == 0
    assert calls[-1] == {"quick": False, "out_dir": None, "save": False, "ship": True}
    calls.pop()
    assert main(["bench", "attention", "--trace", str(tmp_path)]) == 2
    assert "use it with `bench train`" in capsys.readouterr().err
    assert len(calls) == 1
