"""``train --strategy``: mirrored over two logical CPUs, and a two-worker cluster on loopback.

Both need fresh processes: logical devices and ``TF_CONFIG`` are read when TensorFlow starts.
GPUs are hidden so that the CPU path runs on every machine.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

import pytest


def _env(**extra):
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", **extra}


def _train(run, *flags, env):
    return subprocess.Popen(
        [sys.executable, "-m", "eanet_course", "train", "--profile", "ci", "--epochs", "1",
         "--logdir", str(run), *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _history(folder):
    with (folder / "history.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def test_mirrored_on_two_logical_cpus(tmp_path):
    run = tmp_path / "run"
    process = _train(run, "--strategy", "mirrored", "--replicas", "2", env=_env())
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    assert "1 epochs, 2 replicas with --strategy mirrored" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert len(_history(run)) == 1 and (run / "best.keras").is_file()


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multiworker_cluster_of_two_processes_on_loopback(tmp_path):
    run = tmp_path / "run"
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    workers = [
        _train(run, "--strategy", "multiworker", env=_env(TF_CONFIG=json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})))
        for index in range(2)
    ]
    outputs = []
    try:
        for worker in workers:  # each must stop on its own
            outputs.append(worker.communicate(timeout=600))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
        assert "2 replicas with --strategy multiworker" in out
    # Worker 0 is the chief: it keeps the run folder; worker 1 keeps its own inside it.
    chief, other = run, run / "workers" / "worker-1"
    for folder in (chief, other):
        assert json.loads((folder / "metrics.json").read_text())["epochs"] == 1
    # One model trained together: the metrics each worker logged are reduced over both.
    assert float(_history(chief)[0]["val_accuracy"]) == pytest.approx(
        float(_history(other)[0]["val_accuracy"]))
    assert json.loads((chief / "metrics.json").read_text())["test"] == pytest.approx(
        json.loads((other / "metrics.json").read_text())["test"])
