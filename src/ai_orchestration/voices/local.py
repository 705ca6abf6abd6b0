"""In-process local LLM voice: a GGUF model (by default Gemma 3 270M) through llama-cpp-python.

Gemma 3 270M is a small *base* model without a chat template, so this voice prompts it with
few-shot completions (:class:`PromptStyle`) and, for multiple choice, scores each option's
log-likelihood instead of asking for a letter. Models load lazily on first use and are cached
per process: one ``Llama`` per (model path, context size), shared by every voice that uses it.
llama.cpp contexts are not thread-safe, so blocking calls (in ``_llama``) run in a worker thread
under the model's lock.

>>> voice = LlamaCppVoice("gemma-qa")          # nothing is loaded yet
>>> request = VoiceRequest.from_prompt("What is the capital of France?",
...                                    choices=("Paris", "Rome"))
>>> asyncio.run(voice.respond(request)).text   # doctest: +SKIP
'Paris'
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from ai_orchestration.errors import (
    AiOrchestrationError,
    BadRequestError,
    ConfigError,
    VoiceError,
    VoiceTimeoutError,
)
from ai_orchestration.voices import _llama
from ai_orchestration.voices._identity import VoiceIdentity
from ai_orchestration.voices._llama import (
    GEMMA_ALIASES,
    SMOLLM2_ALIASES,
    gemma_model_path,
    smollm2_model_path,
)
from ai_orchestration.voices._structured import parse_json_output, softmax
from ai_orchestration.voices._types import Usage, VoiceDelta, VoiceRequest, VoiceResponse

__all__ = [
    "GEMMA_ALIASES",
    "PROMPT_STYLES",
    "QA_STYLE",
    "TRIVIA_STYLE",
    "LlamaCppVoice",
    "PromptStyle",
    "gemma_model_path",
]

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

# --- the voice ----------------------------------------------------------------------------


class LlamaCppVoice:
    """A local GGUF model answering through few-shot completion and option scoring.

    ``model_path`` is a GGUF file or one of :data:`GEMMA_ALIASES` (default: the packaged
    Gemma 3 270M); ``prompt`` a :class:`PromptStyle` or a name in :data:`PROMPT_STYLES`;
    ``n_threads`` applies when this voice is the first to load the model. Free-text requests
    are answered greedily (``temperature=0``) or sampled with ``seed``; ``request.settings``
    override the voice's defaults per call. Requests with ``choices`` get the option with the
    highest score after the prompt and a softmax ``distribution`` over the scores divided by
    ``option_temperature`` (fitted for the default voices: see ``defaults``).
    ``scoring="sum"`` scores an option by its log-likelihood (biased towards short options),
    ``"mean"`` by its log-likelihood per token. ``response_schema`` constrains the output
    with a JSON-schema grammar and fills ``parsed``. Only the last user message is asked;
    ``instructions`` replace the prompt header; ``tools`` are ignored (a base model cannot
    call them). ``settings.timeout`` bounds the call, waiting for the
    shared model included (``VoiceTimeoutError``). Usage is counted in tokens; cost is 0.
    """

    __slots__ = (
        "_model_path",
        "_name",
        "max_tokens",
        "n_ctx",
        "n_threads",
        "option_temperature",
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
        option_temperature: float = 1.0,
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
        if not option_temperature > 0:
            raise ConfigError("option_temperature must be > 0", field="option_temperature")
        if n_ctx < 64 or max_tokens < 1:
            raise ConfigError("n_ctx must be >= 64 and max_tokens >= 1", field="n_ctx")
        self._model_path = model_path
        self.n_ctx, self.n_threads = n_ctx, n_threads
        self.temperature, self.seed, self.max_tokens = temperature, seed, max_tokens
        self.prompt, self.scoring = prompt, scoring
        self.option_temperature = option_temperature
        self._name = name or f"local:{self.model}"

    @property
    def name(self) -> str:
        return self._name

    @property
    def model(self) -> str:
        """The model's name: the GGUF file name without its extension."""
        if self._model_path is None or self._model_path in GEMMA_ALIASES:
            return "gemma-3-270m-q4_k_m"
        if self._model_path in SMOLLM2_ALIASES:
            return "smollm2-135m-instruct-q4_1"
        return Path(self._model_path).stem

    @property
    def identity(self) -> VoiceIdentity:
        """The in-process model: one per GGUF model, whatever the voice is called."""
        return VoiceIdentity("llama.cpp", self.model)

    @property
    def model_path(self) -> str:
        """The GGUF file (assembling the packaged Gemma file on first use)."""
        if self._model_path is None or self._model_path in GEMMA_ALIASES:
            return gemma_model_path()
        if self._model_path in SMOLLM2_ALIASES:
            return smollm2_model_path()
        return self._model_path

    def __repr__(self) -> str:
        return f"LlamaCppVoice({self._name!r}, model={self.model!r})"

    @property
    def context_tokens(self) -> int:
        """Input tokens (question and longest option) this voice can take: the context less
        the answer's tokens and the prompt's fixed part (~3 characters a token)."""
        return self.n_ctx - self.max_tokens - len(self.prompt.prefix()) // 3

    def load(self) -> float:
        """Load (or find in the process cache) the model; returns its load time in seconds."""
        return _llama.get_model(self.model_path, self.n_ctx, self.n_threads).load_s

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        started = time.perf_counter()
        if request.choices is not None:
            return await self._choose(request, started)
        return await self._generate(request, started)

    async def _choose(self, request: VoiceRequest, started: float) -> VoiceResponse:
        options = list(dict.fromkeys(request.choices or ()))
        if not options:
            raise BadRequestError("request.choices is empty", voice=self._name)
        scored = await self._run(_llama.score_options, request, options, self.n_ctx)
        scores = scored.logprobs
        if self.scoring == "mean":
            scores = tuple(s / n for s, n in zip(scores, scored.lengths, strict=True))
        probs = softmax([s / self.option_temperature for s in scores])
        best = max(range(len(options)), key=probs.__getitem__)
        return VoiceResponse(
            text=options[best],
            usage=Usage(input_tokens=scored.prompt_tokens + sum(scored.lengths), calls=1),
            model=self.model,
            finish_reason="stop",
            latency_s=time.perf_counter() - started,
            distribution=dict(zip(options, probs, strict=True)),
            confidence=probs[best],
            raw={
                "logprobs": dict(zip(options, scored.logprobs, strict=True)),
                "lengths": dict(zip(options, scored.lengths, strict=True)),
            },
        )

    async def _generate(self, request: VoiceRequest, started: float) -> VoiceResponse:
        out = await self._run(_llama.complete, request, self._options(request))
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

        options = self._options(request, emit)
        run = asyncio.ensure_future(self._run(_llama.complete, request, options))
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
            model = _llama.get_model(self.model_path, self.n_ctx, self.n_threads)
            with model.lock, _llama.job(model, cancel):
                return fn(model, _llama.tokenize_prompt(model, prefix, text), *args, cancel)

        timeout = request.settings.timeout
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.to_thread(work)
        except TimeoutError as exc:
            _llama.abort(cancel)  # the thread stops within a graph node, not a whole decode
            raise VoiceTimeoutError(f"no answer within {timeout}s", voice=self._name) from exc
        except asyncio.CancelledError:
            _llama.abort(cancel)
            raise
        except AiOrchestrationError:
            raise
        except ValueError as exc:
            raise BadRequestError(str(exc), voice=self._name) from exc
        except (RuntimeError, OSError) as exc:
            raise VoiceError(f"llama.cpp failed: {exc}", voice=self._name) from exc
