"""``python -m eanet_course {train,bench,exercises,doctor,ablation}``: the course from a terminal.

Each command imports what it needs when it runs, so ``--help`` answers at once. Every error a
user can cause (bad arguments, bad values, missing or damaged files, a full disk, no network)
prints one ``error:`` line naming the file and the fix, and exits with status 2; bad arguments
print argparse's usage too. Arguments and the environment are checked before anything is
written.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import sys
from collections.abc import Sequence

from eanet_course.config import DATASETS, PRECISIONS, PROFILES

__all__ = ["main"]

# eanet_course.training.STRATEGIES, spelt out so that --help needs no TensorFlow (a test checks).
_STRATEGIES = ("none", "mirrored", "multiworker")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    """A seed NumPy and TensorFlow accept: an integer in ``0 .. 2**32 - 1``."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 4294967295 (2**32 - 1), "
                                         f"got {text!r}")
    return value


def _train(args: argparse.Namespace) -> int:
    from eanet_course.config import get_profile
    from eanet_course.training import make_strategy, train

    # First: TensorFlow reads logical devices and $TF_CONFIG when it starts.
    strategy = make_strategy(args.strategy, args.replicas)
    config = get_profile(args.profile)
    if args.dataset:
        config = config.replace(dataset=args.dataset)
    if args.seed is not None:
        config = config.replace(seed=args.seed)
    if args.precision is not None:
        config = config.replace(precision=args.precision)
    spread = (f", {strategy.num_replicas_in_sync} replicas with --strategy {args.strategy}"
              if strategy else "")
    print(f"Training EANet on {config.dataset} ({config.num_patches} patches, "
          f"{config.num_blocks} blocks, {args.epochs or config.epochs} epochs{spread}, "
          f"{config.precision}).")
    try:
        result = train(config, logdir=args.logdir, epochs=args.epochs, strategy=strategy)
    except KeyboardInterrupt:
        print("\nInterrupted. Run the same command again to resume from the last finished epoch.")
        return 130
    metrics = result.test_metrics
    if result.already_finished:
        done = result.resumed_from
        print(f"{result.run_dir} holds a finished run of {done} epoch{'s' * (done != 1)}; "
              "nothing changed. Pass a larger --epochs to train it on.")
    elif result.resumed_from:
        print(f"Resumed after epoch {result.resumed_from}.")
    print(f"\nTest accuracy {metrics['accuracy']:.4f}, top-5 {metrics['top5_accuracy']:.4f}, "
          f"loss {metrics['loss']:.4f} (best checkpoint), in {result.wall_time_s:.1f} s.")
    print(f"Run folder {result.run_dir}/: best.keras, history.csv, metrics.json, tensorboard/")
    print(f"Watch it: tensorboard --logdir {result.run_dir / 'tensorboard'}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.trace is not None and args.what != "train":
        raise ValueError("--trace DIR profiles the training step: use it with `bench train`.")
    if args.precision is not None and args.what not in ("train", "epoch"):
        raise ValueError("--precision compares or sets the training precision: use it with "
                         "`bench train` or `bench epoch`.")
    if args.profile is not None and args.what != "epoch":
        raise ValueError("--profile picks the model whose epoch is timed: use it with "
                         "`bench epoch`.")
    if args.overwrite and args.what != "limits":
        raise ValueError("--overwrite replaces the results of `bench limits`: use it with "
                         "`bench limits`.")
    if (args.save or args.ship) and args.what == "epoch":
        raise ValueError("--save and --ship keep a record of `bench attention`, `bench train` or "
                         "`bench limits`, not of `bench epoch`.")
    if args.what == "epoch":
        return _bench_epoch(args)
    options = {"trace_dir": args.trace} if args.trace is not None else {}
    if args.save or args.ship:
        options.update(save=args.save, ship=args.ship)
    if args.precision is not None:
        options["precision"] = args.precision
    if args.what == "attention":
        from eanet_course.bench.attention import run
    elif args.what == "limits":
        from eanet_course.bench.limits import run

        options.update(shard=args.shard, train=not args.gather, overwrite=args.overwrite)
    else:
        from eanet_course.bench.training import run
    run(quick=args.quick, out_dir=args.out_dir, **options)
    return 0


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use I/K, e.g. 0/2") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"{text!r}: I/K needs 0 <= I < K, e.g. 1/2")
    return index, count


def _bench_epoch(args: argparse.Namespace) -> int:
    from eanet_course.bench.training import run_epoch
    from eanet_course.config import get_profile

    config = get_profile(args.profile)
    if args.precision is not None:
        config = config.replace(precision=args.precision)
    run_epoch(config, quick=args.quick, out_dir=args.out_dir)
    return 0


def _exercises(args: argparse.Namespace) -> int:
    from eanet_course import exercises

    try:
        if args.action == "build":
            written = exercises.build()
            for path in written:
                print(f"wrote {path}")
            print(f"{len(written)} file(s) written; the others were up to date.")
            return 0
        stale = exercises.stale()
    except exercises.MissingNbgrader as error:
        print(error, file=sys.stderr)
        return 2
    for name in stale:
        print(f"stale or missing: {name}")
    if stale:
        print("Run `python -m eanet_course exercises build` and commit the result.")
        return 1
    print("Exercises, nbgrader metadata and instructor/source/ are up to date.")
    return 0


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


_DOCTOR_PACKAGES = ("tensorflow", "keras", "numpy", "scikit-learn", "matplotlib", "tensorboard",
                    "ipywidgets", "jupyterlab", "jupyterlab_widgets")


def _environment_problems() -> list[str]:
    """What is wrong with ``EANET_PROFILE``, ``EANET_DATASET`` and ``EANET_HOME``, in words."""
    from eanet_course.config import get_profile

    problems = []
    for name, allowed in (("EANET_PROFILE", PROFILES), ("EANET_DATASET", DATASETS)):
        value = os.environ.get(name)
        if value and value not in allowed:
            problems.append(f"{name}={value!r} is not one of {sorted(allowed)}: set one of "
                            f"them, or unset {name}")
    if not problems:
        try:
            get_profile()
        except ValueError as e:
            problems.append(f"EANET_PROFILE with EANET_DATASET gives no valid config ({e})")
    home = os.environ.get("EANET_HOME")
    if home:
        path = os.path.expanduser(home)
        if os.path.exists(path) and not (os.path.isdir(path) and os.access(path, os.W_OK)):
            problems.append(f"EANET_HOME={home!r} is not a folder you can write to: point it at "
                            "one, or unset it (default ~/.cache/eanet-course)")
    return problems


def _doctor(args: argparse.Namespace) -> int:
    problems = _environment_problems()
    advice = []
    print(f"Python      {platform.python_version()} ({sys.executable})")
    for dist in _DOCTOR_PACKAGES:
        version = _version(dist)
        print(f"{dist:<19} {version or 'missing'}")
        if version is None:
            problems.append(f"install {dist}: make setup, or pip install -c constraints.txt -e . "
                            "in the course folder")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    print(f"GPU         {', '.join(g.name for g in gpus) if gpus else 'none (CPU only)'}")
    if not gpus:
        print("            the ci and laptop profiles run fine on a CPU; paper wants a GPU")
    profile = os.environ.get("EANET_PROFILE") or "laptop (default)"
    print(f"Profile     {profile}; EANET_DATASET={os.environ.get('EANET_DATASET') or 'unset'}")
    if not any(p.startswith("EANET_HOME") for p in problems):
        from eanet_course.data import cifar100_cache_path
        from eanet_course.paths import eanet_home

        print(f"EANET_HOME  {eanet_home()}")
        cached = cifar100_cache_path()
        print(f"CIFAR-100   {'cached at ' + str(cached) if cached.is_file() else 'not cached'}")
        if not cached.is_file():
            advice.append(f"for CIFAR-100 offline, copy cifar-100-python.tar.gz to {cached}; "
                          "or use EANET_DATASET=digits (or --profile ci)")
    print(f"\nChecked: the Python version; that {len(_DOCTOR_PACKAGES)} packages are installed "
          "(versions above); which GPUs TensorFlow sees; that EANET_PROFILE and EANET_DATASET, "
          "when set, name a profile and a data set; that EANET_HOME is a folder you can write "
          "to; whether CIFAR-100 is cached.")
    if problems:
        print("\nWhat to fix (the course cannot run as it is):")
    for problem in problems:
        print(f"- {problem}")
    if advice:
        print("\nWorth knowing:")
    elif not problems:
        print("\nNothing to fix.")
    for line in advice:
        print(f"- {line}")
    return 2 if problems else 0


# -- ablation (the 2x2 clipping x weight-decay ablation, notebook 07) -------------------------
def _ablation(args: argparse.Namespace) -> int:
    from eanet_course.ablation import run
    from eanet_course.config import get_profile

    run(get_profile(args.profile), epochs=args.epochs, out_dir=args.out)
    return 0


def _add_ablation(commands) -> None:
    ablation = commands.add_parser(
        "ablation", help="the 2x2 ablation: clipping augmentation x weight decay",
        description="Train four EANets (the Keras 3 port's augmentation or the course's, weight "
                    "decay 1e-4 or the 2021 recipe's) and print their test top-1/top-5 beside "
                    "the published numbers. A GPU is recommended for --profile paper.")
    ablation.add_argument("--profile", choices=sorted(PROFILES),
                          help="model, data and budget (default: $EANET_PROFILE, else laptop)")
    ablation.add_argument("--epochs", type=_positive_int, help="override the number of epochs")
    ablation.add_argument("--out", metavar="DIR",
                          help="the runs' folder (default: under $EANET_HOME/ablation)")
    ablation.set_defaults(handler=_ablation)
# -- end ablation ------------------------------------------------------------------------------


def _program() -> str:
    """How the user called us: ``eanet-course`` (the console script) or ``python -m ...``."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if name in ("eanet-course", "eanet-course.exe"):
        return "eanet-course"
    return "python -m eanet_course"


def _parser() -> argparse.ArgumentParser:
    from eanet_course import __version__

    parser = argparse.ArgumentParser(
        prog=_program(), description="The EANet course from the command line.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train EANet with a profile's recipe",
                                description="Train EANet. Run again to resume an interrupted run; a "
                                            "finished run is reported, not retrained; a larger "
                                            "--epochs trains it on.")
    train.add_argument("--profile", choices=sorted(PROFILES),
                       help="recipe and data (default: $EANET_PROFILE, else laptop)")
    train.add_argument("--dataset", choices=sorted(DATASETS), help="override the data set")
    train.add_argument("--epochs", type=_positive_int, help="override the number of epochs")
    train.add_argument("--logdir", help="run folder (default: under $EANET_HOME/runs)")
    train.add_argument("--seed", type=_seed, help="override the seed (0 .. 2**32 - 1)")
    train.add_argument("--precision", choices=PRECISIONS,
                       help="float32 (default), or mixed_bfloat16: bfloat16 arithmetic on "
                            "float32 weights, the classifier in float32 (an option: measure it "
                            "with `bench train --precision mixed_bfloat16` first)")
    train.add_argument("--strategy", choices=_STRATEGIES, default="none",
                       help="none: one device; mirrored: every local GPU, or without a GPU the "
                            "CPU split into logical devices; multiworker: this process is one "
                            "worker of the cluster in $TF_CONFIG (start one per worker)")
    train.add_argument("--replicas", type=_positive_int,
                       help="with --strategy mirrored: how many GPUs (default: all), or how many "
                            "logical CPUs without a GPU (default 2)")
    train.set_defaults(handler=_train)

    bench = commands.add_parser("bench", help="benchmarks (timings, not tests)",
                                description="Benchmarks; they print figures and write JSON.")
    bench.add_argument("what", choices=["attention", "train", "limits", "epoch"],
                       help="attention: external vs self-attention as N grows; "
                            "train: the course's training step vs the Keras example's; "
                            "limits: what external attention can learn across patches, "
                            "against self-attention (digit-tile tasks); "
                            "epoch: one training epoch of a profile on CIFAR-sized data")
    bench.add_argument("--quick", action="store_true", help="a shorter run")
    bench.add_argument("--out", "--out-dir", dest="out_dir", metavar="DIR",
                       help="where results go (default: $EANET_HOME/bench)")
    bench.add_argument("--trace", metavar="DIR",
                       help="train only: write a TensorBoard profiler trace of two steps to DIR "
                            "and print the time by op type")
    bench.add_argument("--precision", choices=PRECISIONS,
                       help="train: also time and train the course in this precision, beside "
                            "float32; epoch: time the epoch in this precision")
    bench.add_argument("--save", action="store_true",
                       help="attention, train, limits: also keep the result as your own record "
                            "in $EANET_HOME/results, which the notebooks show beside the shipped "
                            "one")
    bench.add_argument("--ship", action="store_true",
                       help="attention, train, limits: write the record into the package "
                            "(maintainers, in a checkout)")
    bench.add_argument("--overwrite", action="store_true",
                       help="limits: replace a limits.json of another plan in --out (without "
                            "it, that is refused before anything is trained)")
    bench.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/K",
                       help="limits: train only every K-th training from I (0-based), to split "
                            "the map between K processes or machines")
    bench.add_argument("--gather", action="store_true",
                       help="limits: train nothing; make the table, plot and record from the "
                            "trainings already kept (e.g. by several --shard runs)")
    bench.add_argument("--profile", choices=sorted(PROFILES),
                       help="epoch only: whose model and batch (default: $EANET_PROFILE, else "
                            "laptop)")
    bench.set_defaults(handler=_bench)

    exercises = commands.add_parser("exercises", help="generate or check exercises/",
                                    description="exercises/ is generated from solutions/.")
    exercises.add_argument("action", choices=["build", "check"],
                           help="build: regenerate; check: fail if stale")
    exercises.set_defaults(handler=_exercises)

    doctor = commands.add_parser("doctor", help="check the environment and say what to fix",
                                 description="Versions, GPU, data cache, widget support.")
    doctor.set_defaults(handler=_doctor)
    _add_ablation(commands)
    from eanet_course.grading.command import add_grade  # noqa: PLC0415 -- lives with grading
    add_grade(commands)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors a user can cause: the package's ``ValueError`` and ``OSError``, and
    TensorFlow's ``OpError`` (a full disk under the TensorBoard writer) if it was imported."""
    tf = sys.modules.get("tensorflow")
    op_error = getattr(getattr(tf, "errors", None), "OpError", None)
    return (ValueError, OSError, *([op_error] if op_error else []))


def _one_line(error: BaseException) -> str:
    if hasattr(error, "message") and hasattr(error, "error_code"):  # a TensorFlow OpError
        fix = ("free disk space" if "space left" in error.message.lower() else
               "fix what it names (a file, a folder, the memory)")
        return (f"TensorFlow stopped ({type(error).__name__}: {error.message}); {fix}, then run "
                "the same command again: a training resumes from its last finished epoch.")
    return str(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for an error the user can fix)."""
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except _user_errors() as e:
        print(f"error: {' '.join(_one_line(e).split())}", file=sys.stderr)
        return 2
