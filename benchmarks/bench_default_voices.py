"""The embedded default's voices on held-out MMLU questions: accuracy, calibration, cost.

Data: ``../shared/data/qa/mmlu_val_dev.jsonl.gz`` (MMLU val + dev, MIT; skipped when absent).
Split (fixed by ``SEED``): ``dev`` and half of ``val`` fit the shipped priors, the other half of
``val`` is held out. Each candidate voice answers every question ONCE: its option scores (summed
log-likelihood, token count, content-free log-likelihood; e5 similarities) and latency are
recorded under ``benchmarks/.cache/default_voices/`` (gitignored; question ids only, never their
text) with the model and prompt version; later runs re-fuse from that record.

``python -m benchmarks default_voices`` reports every candidate and panel on the held-out half
with the shipped priors and merges ``default_heldout_acc``, ``default_heldout_ece`` and
``default_best_voice_acc`` into ``benchmarks/results/consensus_real.json``.
``python -m benchmarks.bench_default_voices --fit`` refits the priors on the fit half and writes
``src/ai_orchestration/voices/default_priors.json``. ``--no-ask`` re-fuses what the record
holds without asking any voice.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks._common import RESULTS, print_table

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "qa" / "mmlu_val_dev.jsonl.gz"
CACHE = Path(__file__).parent / ".cache" / "default_voices"
PRIORS = ROOT / "src" / "ai_orchestration" / "voices" / "default_priors.json"
SEED = 9  # the number: fixes which half of val is held out
# Questions drawn from each half: every voice is run once on these (≈0.3–1 s a question each
# on 2 cores), so the whole record takes minutes, not hours.
N_FIT, N_HELD = 150, 250
#: The shipped default panel (chosen from the survey ``main`` prints).
DEFAULT_PANEL = ("gemma-qa", "smollm2-qa", "e5-similarity")
VARIANTS = ("sum", "mean")
RIDGES = (1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0)  # per question, on the coefficients
BINS = 10


# --- data ----------------------------------------------------------------------------------


def load_questions() -> list[dict[str, Any]] | None:
    if not DATA.is_file():
        return None
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def split(questions: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(fit ids, held-out ids): dev plus a seeded half of val, and the other half of val,
    each in a seeded order (the voices are asked the first ``N_FIT`` and ``N_HELD``)."""
    rng = np.random.default_rng(SEED)
    val = sorted(q["id"] for q in questions if q["split"] == "val")
    order = rng.permutation(len(val))
    held = sorted(val[i] for i in order[: len(val) // 2])
    fit = sorted(q["id"] for q in questions if q["id"] not in set(held))
    return _shuffled(fit, rng), _shuffled(held, rng)


def _shuffled(ids: list[str], rng: np.random.Generator) -> list[str]:
    return [ids[i] for i in rng.permutation(len(ids))]


# --- candidates and the record -------------------------------------------------------------


def candidates() -> dict[str, Callable[[], Any]]:
    """Voices surveyed: two model families that install from PyPI, plus e5 similarity."""
    from ai_orchestration.voices.embedding import EmbeddingVoice
    from ai_orchestration.voices.local import QA_STYLE, TRIVIA_STYLE, LlamaCppVoice

    def llama(name: str, model: str | None, style: Any) -> Callable[[], Any]:
        # one thread each: the machine's two cores are shared, and llama.cpp's spinning
        # worker threads slow down many-fold when oversubscribed
        return lambda: LlamaCppVoice(
            name, model_path=model, prompt=style, scoring="sum", n_threads=1
        )

    return {
        "gemma-qa": llama("gemma-qa", None, QA_STYLE),
        "gemma-trivia": llama("gemma-trivia", None, TRIVIA_STYLE),
        "smollm2-qa": llama("smollm2-qa", "smollm2", QA_STYLE),
        "e5-similarity": lambda: EmbeddingVoice("e5-similarity"),
    }


def version(voice: Any) -> str:
    """Model and prompt version of a recorded voice: a change in either re-records it."""
    prompt = getattr(voice, "prompt", None)
    text = prompt.render("{question}") if prompt is not None else "e5 query/passage"
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{voice.model}/{digest}"


def _scores(response: Any) -> dict[str, list[float]]:
    raw, options = response.raw, list(response.distribution)
    if "similarities" in raw:
        return {"similarity": [raw["similarities"][o] for o in options]}
    return {
        "logprob": [raw["logprobs"][o] for o in options],
        "length": [float(raw["lengths"][o]) for o in options],
    }


def record(name: str, factory: Callable[[], Any], questions: list[dict[str, Any]]) -> Path:
    """Ask ``name`` every question not yet in its record; returns the record file."""
    from ai_orchestration.voices import VoiceRequest

    voice = factory()
    path = CACHE / f"{name}.jsonl"
    header = {"voice": name, "version": version(voice)}
    done = _read(path) if path.is_file() and _header(path) == header else {}
    if not done:
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(header) + b"\n")
    todo = [q for q in questions if q["id"] not in done]
    print(f"{name}: {len(done)} recorded, {len(todo)} to ask ({header['version']})", flush=True)
    with path.open("ab") as out:
        for n, q in enumerate(todo, 1):
            request = VoiceRequest.from_prompt(q["question"], choices=tuple(q["choices"]))
            if len(set(q["choices"])) < len(q["choices"]):
                continue  # repeated option texts cannot be scored apart
            started, cpu = time.perf_counter(), time.process_time()
            response = asyncio.run(voice.respond(request))
            row = {"id": q["id"], "s": time.perf_counter() - started, **_scores(response)}
            row["cpu_s"] = time.process_time() - cpu  # this process does nothing else
            out.write(orjson.dumps(row) + b"\n")
            out.flush()  # a run cut short keeps every answer it got
            if n % 100 == 0:
                print(f"  {name}: {n}/{len(todo)}", flush=True)
    return path


def _header(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return dict(orjson.loads(f.readline()))


def _read(path: Path) -> dict[str, dict[str, Any]]:
    lines = path.read_bytes().splitlines()[1:]
    return {row["id"]: row for row in map(orjson.loads, lines)}


# --- scores, fits and metrics --------------------------------------------------------------


def variant_scores(row: dict[str, Any], variant: str) -> np.ndarray[Any, Any]:
    """One voice's option scores for one question under a scoring variant."""
    if "similarity" in row:
        return np.asarray(row["similarity"])
    lp, n = np.asarray(row["logprob"]), np.asarray(row["length"])
    return lp / n if variant == "mean" else lp


def softmax(z: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray[Any, Any] = e / e.sum(axis=-1, keepdims=True)
    return out


def fit_pool(feats: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Coefficients c ≥ 0 of the log-linear pool softmax(Σ c_v·s_v) minimising log-loss plus
    a ridge chosen by 5-fold cross-validation: with few questions, or voices at chance, the
    pool shrinks towards uniform (confidence at chance) instead of fitting noise.

    ``feats``: (questions, voices, options) scores.
    """
    folds = np.arange(len(y)) % 5
    cv = {}
    for l2 in RIDGES:
        loss = 0.0
        for f in range(5):
            c = _fit_pool(feats[folds != f], y[folds != f], l2)
            p = softmax(np.einsum("qvk,v->qk", feats[folds == f], c))
            loss -= float(np.log(p[np.arange(len(p)), y[folds == f]] + 1e-12).sum())
        cv[l2] = loss
    return _fit_pool(feats, y, min(cv, key=cv.__getitem__))


def _fit_pool(
    feats: np.ndarray[Any, Any], y: np.ndarray[Any, Any], l2: float
) -> np.ndarray[Any, Any]:
    """Newton steps on the convex penalised log-loss; a coefficient that turns negative is
    clamped at 0 (a voice that would help only inverted is left out)."""
    c = np.zeros(feats.shape[1])
    rows = np.arange(len(y))
    for _ in range(50):
        p = softmax(np.einsum("qvk,v->qk", feats, c))
        mean = np.einsum("qk,qvk->qv", p, feats)
        grad = (mean - feats[rows, :, y]).mean(axis=0) + l2 * c
        centred = feats - mean[:, :, None]
        hess = np.einsum("qk,qvk,qwk->vw", p, centred, centred) / len(y) + l2 * np.eye(len(c))
        step = np.linalg.solve(hess, grad)
        c = np.maximum(c - step, 0.0)
        if np.abs(step).max() < 1e-8:
            break
    return c


def ece(proba: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> float:
    """Expected calibration error of the top answer, ``BINS`` equal-width confidence bins."""
    conf, right = proba.max(axis=1), proba.argmax(axis=1) == y
    bins = np.minimum((conf * BINS).astype(int), BINS - 1)
    total = 0.0
    for b in range(BINS):
        mask = bins == b
        if mask.any():
            total += mask.mean() * abs(float(right[mask].mean()) - float(conf[mask].mean()))
    return total


def features(
    records: dict[str, dict[str, dict[str, Any]]],
    voices: Sequence[str],
    variants: Sequence[str],
    ids: Sequence[str],
) -> np.ndarray[Any, Any]:
    return np.stack(
        [
            np.stack(
                [variant_scores(records[v][i], s) for v, s in zip(voices, variants, strict=True)]
            )
            for i in ids
        ]
    )


def best_variant(rows: dict[str, dict[str, Any]], ids: list[str], y: np.ndarray[Any, Any]) -> str:
    """The scoring variant whose temperature-fitted pool of one has the least fit log-loss."""
    if "similarity" in rows[ids[0]]:
        return "similarity"
    losses = {}
    for variant in VARIANTS:
        f = np.stack([variant_scores(rows[i], variant) for i in ids])[:, None, :]
        c = fit_pool(f, y)
        p = softmax(np.einsum("qvk,v->qk", f, c))
        losses[variant] = float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())
    return min(losses, key=losses.__getitem__)


# --- the benchmark -------------------------------------------------------------------------


def _gold(questions: list[dict[str, Any]]) -> dict[str, int]:
    return {q["id"]: int(q["answer"]) for q in questions}


def _recorded(
    questions: list[dict[str, Any]], *, ask: bool = True
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every candidate's record of the drawn questions, asking what is not recorded yet
    unless ``ask`` is False (then only what the record holds is used)."""
    by_id = {q["id"]: q for q in questions}
    fit, held = split(questions)
    asked = [by_id[i] for i in drawn_order(fit[:N_FIT], held[:N_HELD])]
    if not ask:
        paths = {name: CACHE / f"{name}.jsonl" for name in candidates()}
        return {name: _read(p) for name, p in paths.items() if p.is_file()}
    return {name: _read(record(name, f, asked)) for name, f in candidates().items()}


Records = dict[str, dict[str, dict[str, Any]]]


def _load(*, ask: bool) -> tuple[list[dict[str, Any]], Records, dict[str, int]] | None:
    """The questions, every candidate's record of them and the gold answers; None (with the
    reason printed) when the data set is absent."""
    questions = load_questions()
    if questions is None:
        print(f"skipped: {DATA} is absent (MMLU val+dev from ../shared/data/qa)")
        return None
    records = _recorded(questions, ask=ask)
    missing = [v for v in DEFAULT_PANEL if v not in records]
    if missing:  # only with --no-ask: nothing recorded yet for these voices
        print(f"skipped: no record of {', '.join(missing)} under {CACHE} (run without --no-ask)")
        return None
    return questions, records, _gold(questions)


def drawn_order(fit: list[str], held: list[str]) -> list[str]:
    """Both draws interleaved in proportion: a record cut short holds a prefix of each."""
    ranked = [(n / len(fit), i) for n, i in enumerate(fit)]
    ranked += [(n / len(held), i) for n, i in enumerate(held)]
    return [i for _, i in sorted(ranked)]


def fit_priors(*, ask: bool = True) -> None:
    """Refit the shipped priors on the fit half and write them into the package."""
    loaded = _load(ask=ask)
    if loaded is None:
        return
    questions, records, gold = loaded
    fit_ids, _ = split(questions)
    panel = DEFAULT_PANEL
    voices, variants = {}, []
    for v in panel:  # each voice alone: on every fit question it answered
        own = [i for i in fit_ids if i in records[v]]
        y_own = np.asarray([gold[i] for i in own])
        s = best_variant(records[v], own, y_own)
        c_alone = fit_pool(features(records, [v], [s], own), y_own)[0]
        acc = float((features(records, [v], [s], own)[:, 0].argmax(axis=1) == y_own).mean())
        voices[v] = {"scoring": s, "option_temperature": 1 / max(c_alone, 1e-6), "accuracy": acc}
        voices[v]["fit_questions"] = len(own)
        variants.append(s)
    ids = [i for i in fit_ids if all(i in records[v] for v in panel)]  # the pool: jointly
    y = np.asarray([gold[i] for i in ids])
    c = fit_pool(features(records, panel, variants, ids), y)
    for v, cv in zip(panel, c, strict=True):
        voices[v]["pool_weight"] = float(cv * voices[v]["option_temperature"])
    payload = {
        "source": "MMLU (Hendrycks et al. 2021, MIT) dev + half of val, seed 9; "
        "fitted by benchmarks/bench_default_voices.py --fit",
        "fit_questions": len(ids),
        "voices": {v: {k: round(x, 6) if isinstance(x, float) else x for k, x in d.items()}
                   for v, d in voices.items()},
    }  # fmt: skip
    PRIORS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {PRIORS.relative_to(ROOT)}: {json.dumps(payload['voices'])}")


def evaluate(
    records: dict[str, dict[str, dict[str, Any]]],
    gold: dict[str, int],
    panel: Sequence[str],
    fit_ids: list[str],
    held_ids: list[str],
) -> dict[str, float]:
    """Fit a panel's pool on the fit half; its accuracy, ECE and log-loss on the held-out half."""
    fit = [i for i in fit_ids if all(i in records[v] for v in panel)]
    held = [i for i in held_ids if all(i in records[v] for v in panel)]
    y_fit, y = np.asarray([gold[i] for i in fit]), np.asarray([gold[i] for i in held])
    variants = [_own_variant(records[v], fit_ids, gold) for v in panel]
    c = fit_pool(features(records, panel, variants, fit), y_fit)
    p = softmax(np.einsum("qvk,v->qk", features(records, panel, variants, held), c))
    cost = sum(float(np.mean([records[v][i]["s"] for i in held])) for v in panel)
    return {
        "cpu_s": sum(_cpu(records[v]) for v in panel),
        "acc": float((p.argmax(axis=1) == y).mean()),
        "ece": ece(p, y),
        "nll": float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean()),
        "mean_conf": float(p.max(axis=1).mean()),
        "cost_s": cost,
        "n": float(len(y)),
    }


def _own_variant(rows: dict[str, dict[str, Any]], fit_ids: list[str], gold: dict[str, int]) -> str:
    own = [i for i in fit_ids if i in rows]
    return best_variant(rows, own, np.asarray([gold[i] for i in own]))


def _cpu(rows: dict[str, dict[str, Any]]) -> float:
    """Mean CPU seconds a question over the rows that measured it (nan when none did)."""
    cpu = [r["cpu_s"] for r in rows.values() if "cpu_s" in r]
    return float(np.mean(cpu)) if cpu else float("nan")


def shipped_heldout(
    records: dict[str, dict[str, dict[str, Any]]], gold: dict[str, int], held_ids: list[str]
) -> dict[str, float]:
    """The shipped priors (as the package applies them) on the held-out half."""
    priors = json.loads(PRIORS.read_text())["voices"]
    panel = list(priors)
    held = [i for i in held_ids if all(i in records[v] for v in panel)]
    y = np.asarray([gold[i] for i in held])
    logits = sum(
        priors[v]["pool_weight"]
        * np.log(
            softmax(
                np.stack([variant_scores(records[v][i], priors[v]["scoring"]) for i in held])
                / priors[v]["option_temperature"]
            )
        )
        for v in panel
    )
    p = softmax(np.asarray(logits))
    voice_acc = {
        v: float(
            (
                np.stack(
                    [variant_scores(records[v][i], priors[v]["scoring"]) for i in held]
                ).argmax(axis=1)
                == y
            ).mean()
        )
        for v in panel
    }
    return {
        "acc": float((p.argmax(axis=1) == y).mean()),
        "ece": ece(p, y),
        "best_voice_acc": max(voice_acc.values()),
        "n": float(len(y)),
        **{f"acc_{v}": a for v, a in voice_acc.items()},
    }


def length_bias(
    name: str, rows: dict[str, dict[str, Any]], gold: dict[str, int], ids: list[str]
) -> list[Any]:
    """A voice's share of shortest-option picks and its accuracy, under each scoring."""
    held = [i for i in ids if i in rows]
    out: list[Any] = [name, len(held)]
    for variant in VARIANTS:
        picks = [int(np.argmax(variant_scores(rows[i], variant))) for i in held]
        shortest = [int(np.argmin(rows[i]["length"])) for i in held]
        out.append(float(np.mean([p == s for p, s in zip(picks, shortest, strict=True)])))
        out.append(float(np.mean([p == gold[i] for p, i in zip(picks, held, strict=True)])))
    return out


def agreement(records: dict[str, dict[str, dict[str, Any]]], gold: dict[str, int], a: str, b: str,
              ids: list[str]) -> tuple[float, float]:  # fmt: skip
    """Share of questions two voices answer alike, and of their common wrong answers among the
    questions both got wrong."""
    same = wrong_same = both_wrong = 0
    for i in ids:  # picks under the shipped scoring (length-normalised where it fits)
        pa = int(np.argmax(variant_scores(records[a][i], _scoring(a))))
        pb = int(np.argmax(variant_scores(records[b][i], _scoring(b))))
        same += pa == pb
        if pa != gold[i] and pb != gold[i]:
            both_wrong += 1
            wrong_same += pa == pb
    return same / max(len(ids), 1), wrong_same / max(both_wrong, 1)


def _scoring(voice: str) -> str:
    shipped = json.loads(PRIORS.read_text())["voices"] if PRIORS.is_file() else {}
    return str(shipped.get(voice, {}).get("scoring", "sum"))


def main(*, ask: bool = True) -> None:
    loaded = _load(ask=ask)
    if loaded is None:
        return
    questions, records, gold = loaded
    fit_ids, held_ids = split(questions)
    print(f"fit {len(fit_ids)} questions, held out {len(held_ids)} (seed {SEED})")
    rows = []
    for v in records:
        r = evaluate(records, gold, [v], fit_ids, held_ids)
        rows.append(
            [v, r["n"], r["acc"], r["ece"], r["nll"], r["mean_conf"], r["cost_s"], r["cpu_s"]]
        )
    print_table(
        "Each candidate voice alone on held-out MMLU (pool of one fitted on the fit half)",
        ["voice", "n", "acc", "ECE", "log-loss", "mean conf", "wall s / q", "CPU s / q"],
        rows,
    )
    rows = []
    for size in (2, 3):
        for panel in itertools.combinations(records, size):
            r = evaluate(records, gold, panel, fit_ids, held_ids)
            rows.append(
                [" + ".join(panel), r["n"], r["acc"], r["ece"], r["nll"], r["cost_s"], r["cpu_s"]]
            )
    print_table(
        "Panels on held-out MMLU (log-linear pool fitted on the fit half)",
        ["panel", "n", "acc", "ECE", "log-loss", "wall s / q", "CPU s / q"],
        rows,
    )
    pairs = []
    for a, b in itertools.combinations(records, 2):
        both = [i for i in held_ids if i in records[a] and i in records[b]]
        pairs.append([f"{a} / {b}", len(both), *agreement(records, gold, a, b, both)])
    print_table(
        "Pairs on held-out: same answer, and same answer among questions both got wrong",
        ["pair", "n", "same", "same wrong"],
        pairs,
    )
    print_table(
        "Length bias on held-out: share of picks that are the shortest option (in tokens)",
        ["voice", "n", "sum: shortest", "sum: acc", "mean: shortest", "mean: acc"],
        [length_bias(v, records[v], gold, held_ids) for v in records if v != "e5-similarity"],
    )
    shipped = shipped_heldout(records, gold, held_ids)
    print(f"\nshipped priors on held-out: {json.dumps(shipped)}")
    merge_result(
        {
            "default_heldout_acc": shipped["acc"],
            "default_heldout_ece": shipped["ece"],
            "default_best_voice_acc": shipped["best_voice_acc"],
            "default_heldout_n": shipped["n"],
            **free_text_smoke(),
        }
    )


SMOKE = ROOT / "tests" / "fixtures" / "free_text_smoke.json"


def correct(answer: Any, accepted: Sequence[str]) -> bool:
    """An answer is right when, normalised, it is or contains (as words) an accepted answer."""
    from ai_orchestration.consensus import normalise

    said = f" {normalise(answer)} "
    return answer is not None and any(f" {normalise(a)} " in said for a in accepted)


def free_text_smoke() -> dict[str, float]:
    """The embedded default on the 13-question free-text smoke set: each voice, the ensemble,
    the same votes re-fused without the e5 selector's, and how many answers echo the question.
    """
    from ai_orchestration import AiOrchestration
    from ai_orchestration.consensus import echoes, fuse
    from ai_orchestration.voices.defaults import default_pool

    questions = json.loads(SMOKE.read_text())["questions"]
    system = AiOrchestration({"state_dir": str(CACHE / "state")})
    results = [system.process(q["prompt"]).consensus for q in questions]
    system.close()
    without = [
        fuse([v for v in c.votes if v.voice != "e5-similarity"], method="logpool",
             reliability=default_pool())
        for c in results
    ]  # fmt: skip
    rows, out = [], {}
    for label, fused in (("with e5 selector", results), ("without (same votes)", without)):
        right = [correct(c.answer, q["answers"]) for c, q in zip(fused, questions, strict=True)]
        echo = [c.answer is not None and echoes(c.answer, q["prompt"])
                for c, q in zip(fused, questions, strict=True)]  # fmt: skip
        rows.append([label, sum(right), sum(echo), sum(c.abstained for c in fused)])
        out.setdefault("default_free_text_right", float(sum(right)))
        out.setdefault("default_free_text_echoes", float(sum(echo)))
    for q, c in zip(questions, results, strict=True):
        said = "; ".join(f"{v.voice}: {v.answer!r}" for v in c.votes)
        print(f"  {q['prompt']} -> {c.answer!r} ({c.confidence:.2f}); {said}")
    voices = [v.voice for v in results[0].votes]
    each = {v: sum(correct(x.answer, q["answers"]) for c, q in zip(results, questions, strict=True)
                   for x in c.votes if x.voice == v and x.ok) for v in voices}  # fmt: skip
    rows.append([f"each voice alone: {each}", "", "", ""])
    print_table(
        "Free-text smoke set (13 questions)",
        ["panel", "right of 13", "echo answers", "abstained"],
        rows,
    )
    return {**out, "default_free_text_n": float(len(questions))}


def merge_result(keys: dict[str, float]) -> None:
    """Read-merge-write ``consensus_real.json``: other benchmarks write other keys there."""
    path = RESULTS / "consensus_real.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data.update({k: float(v) for k, v in keys.items()})
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


if __name__ == "__main__":
    ask = "--no-ask" not in sys.argv[1:]  # re-fuse what the record holds, asking no voice
    fit_priors(ask=ask) if "--fit" in sys.argv[1:] else main(ask=ask)
