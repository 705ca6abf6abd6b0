"""Local abort benchmark: what llama.cpp's abort callback costs, and how soon it stops a decode.

Decodes an ~800-token prompt with Gemma 3 270M (best of 3) with no abort callback, with a
Python callback (polled at every graph node), and with the C flag the voices use
(``_llama._install_abort``: C's ``strlen`` over a one-byte flag), each also beside a busy
Python thread; then sets the flag and times how long the decode takes to stop.
Run: ``python -m benchmarks local_abort``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from benchmarks._common import write_result


def _decode_s(llm: Any, tokens: list[int]) -> float:
    import llama_cpp

    best = float("inf")
    for _ in range(3):
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
        llm.n_tokens = 0
        started = time.perf_counter()
        llm.eval(tokens)
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


def _with_busy_thread(llm: Any, tokens: list[int]) -> float:
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(1000))

    thread = threading.Thread(target=busy)
    thread.start()
    try:
        return _decode_s(llm, tokens)
    finally:
        stop.set()
        thread.join()


def main() -> None:
    import llama_cpp

    from ai_orchestration.voices._llama import _install_abort, _route_logs, gemma_model_path

    _route_logs(llama_cpp)
    llm = llama_cpp.Llama(model_path=gemma_model_path(), n_ctx=1024, n_threads=2, verbose=False)
    text = "The quick brown fox jumps over the lazy dog. " * 80
    tokens = llm.tokenize(text.encode(), add_bos=True)[:800]
    rows: dict[str, float] = {"no_callback_s": _decode_s(llm, tokens)}

    @llama_cpp.ggml_abort_callback  # type: ignore[misc]
    def python_callback(_data: Any) -> bool:
        return False

    llama_cpp.llama_set_abort_callback(llm.ctx, python_callback, None)
    rows["python_callback_s"] = _decode_s(llm, tokens)
    rows["python_callback_busy_thread_s"] = _with_busy_thread(llm, tokens)
    flag, _callback = _install_abort(llm)
    rows["c_flag_s"] = _decode_s(llm, tokens)
    rows["c_flag_busy_thread_s"] = _with_busy_thread(llm, tokens)
    flag[0] = b"x"
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(llm.ctx), True)
    llm.n_tokens = 0
    started = time.perf_counter()
    with contextlib.suppress(RuntimeError):  # the abort: "llama_decode returned 2"
        llm.eval(tokens)
    rows["abort_stops_decode_after_s"] = round(time.perf_counter() - started, 4)
    llm.close()
    for key, value in rows.items():
        print(f"{key:<32} {value:>8}")
    write_result("local_abort", {"prompt_tokens": len(tokens), **rows})


if __name__ == "__main__":
    main()
