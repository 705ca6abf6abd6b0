"""A passed deadline stops local model work; loading is a phase of its own; quiet stderr."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ai_orchestration import AiOrchestration
from ai_orchestration.errors import VoiceTimeoutError
from ai_orchestration.testing import FunctionVoice
from ai_orchestration.voices import VoiceRequest, VoiceSettings, _llama
from ai_orchestration.voices.local import LlamaCppVoice

# ~600 tokens: a decode of several tenths of a second on a laptop core, far more than 0.25 s
LONG = " ".join(f"Item {i} of the list is painted red." for i in range(70))


@pytest.mark.llm
async def test_a_timeout_aborts_the_decode_and_frees_the_model() -> None:
    voice = LlamaCppVoice("gemma-qa")
    await asyncio.to_thread(voice.load)
    hurried = VoiceRequest.from_prompt(
        f"{LONG} What colour is item 3?",
        choices=("red", "blue"),
        settings=VoiceSettings(timeout=0.05),
    )
    with pytest.raises(VoiceTimeoutError):
        await voice.respond(hurried)
    model = _llama.get_model(voice.model_path, voice.n_ctx, voice.n_threads)
    freed = await asyncio.to_thread(model.lock.acquire, True, 0.25)
    assert freed, "the worker thread still decodes the abandoned prompt"
    model.lock.release()
    answer = await voice.respond(
        VoiceRequest.from_prompt("What is the capital of France?", choices=("Paris", "Rome"))
    )
    assert answer.text == "Paris"  # the aborted call left the model usable


class SlowLoadingVoice(FunctionVoice):
    """Loads its model (0.5 s) on first use, like a local voice."""

    def __init__(self, name: str) -> None:
        super().__init__(name, self._answer)
        self.loaded = False

    def load(self) -> float:
        time.sleep(0.5)
        self.loaded = True
        return 0.5

    def _answer(self, request: VoiceRequest) -> Any:
        if not self.loaded:
            self.load()
        return "Paris"


def test_model_loading_is_a_warm_up_phase_not_billed_to_the_first_run(tmp_path: Path) -> None:
    cfg = {
        "state_dir": str(tmp_path),
        "consensus": {"method": "majority", "embed": "none"},
        "run": {"timeout": 0.3},
    }
    with AiOrchestration(cfg, voices=[SlowLoadingVoice("local")]) as system:
        result = system.process("Capital of France?")
        assert result.answer == "Paris"
        assert list(system.warm_up_s or {}) == ["local"]
        assert (system.warm_up_s or {})["local"] >= 0.5
        root = result.trace.root
        assert root is not None and root.attributes is not None
        assert root.attributes["warm_up_s"] == system.warm_up_s  # reported on the first run
        second = system.process("Capital of Spain?").trace.root
        assert second is not None and "warm_up_s" not in (second.attributes or {})


@pytest.mark.llm
def test_a_local_model_run_leaves_stderr_clean() -> None:
    code = (
        "import asyncio\n"
        "from ai_orchestration.voices import LlamaCppVoice, VoiceRequest\n"
        "r = VoiceRequest.from_prompt('Capital of France?', choices=('Paris', 'Rome'))\n"
        "print(asyncio.run(LlamaCppVoice('gemma-qa').respond(r)).text)\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "always", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Paris\n"
    assert done.stderr == ""  # no llama_kv_cache_iswa line, no ResourceWarning at exit
