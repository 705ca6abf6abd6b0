"""The ``ai-orchestration`` command line: process, run, demo, bench, trace.

User errors print one line and exit 2; run errors print one line and exit 1; never a traceback.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from ai_orchestration.errors import AiOrchestrationError, ConfigError, InputError, UserError
from ai_orchestration.tracing._redact import redact_text
from ai_orchestration.tracing._trace import flush_processors

__all__ = ["app", "main"]


def _plain_help_option(option: Any) -> Any:
    if option is not None:
        option.metavar = ""  # a flag takes no value: no "<bool>" beside --help
    return option


class _Command(TyperCommand):
    """Usage lines as people write them (``process [OPTIONS] PROMPT``), flags without types."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = (param.metavar or param.name or "").upper()
                name += "..." if param.nargs != 1 else ""
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def get_help_option(self, ctx: Any) -> Any:
        return _plain_help_option(super().get_help_option(ctx))


class _Group(TyperGroup):
    def get_help_option(self, ctx: Any) -> Any:
        return _plain_help_option(super().get_help_option(ctx))


app = typer.Typer(
    name="ai-orchestration",
    help="Many AI models, one answer: consensus with calibrated confidence, traced.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Group,
)
command = app.command(cls=_Command)
# No emoji codes anywhere: ``:x:`` in "openai-compat:x: cannot connect" is text, not an icon.
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML or YAML config file.", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.", metavar="")]


def _fail(exc: BaseException, code: int) -> typer.Exit:
    text = redact_text(" ".join(str(exc).split())) or type(exc).__name__
    err.print(f"error: {text}", markup=False, emoji=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


def one_line_errors(fn: F) -> F:
    """Turn library errors into one line on stderr and an exit code (2 user, 1 run)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            raise _fail(exc, 2) from None
        except AiOrchestrationError as exc:
            raise _fail(exc, 1) from None
        except KeyboardInterrupt:
            raise _fail(RuntimeError("interrupted"), 130) from None
        except OSError as exc:
            raise _fail(exc, 2) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # a bug of ours: still one line unless debugging
            if os.environ.get("AI_ORCHESTRATION_DEBUG"):
                raise
            raise _fail(RuntimeError(f"internal error: {type(exc).__name__}: {exc}"), 1) from None

    return wrapper  # type: ignore[return-value]


def _system(config: Path | None) -> Any:
    from ai_orchestration import AiOrchestration

    return AiOrchestration(config)


def _print_result(result: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(result.to_dict(), default=str).decode() + "\n")
        return
    from ai_orchestration._demo import answer_text, votes_table

    out.print(f"[bold]answer[/]      {answer_text(result)}", highlight=False)
    out.print(f"[bold]confidence[/]  {result.confidence:.3f}")
    out.print(votes_table(result))
    out.print(f"[bold]run id[/]      {result.run_id}")
    if result.trace_path:
        out.print(f"[bold]trace[/]       {escape(str(result.trace_path))}", highlight=False)


@command
@one_line_errors
def process(
    prompt: Annotated[str, typer.Argument(help="The question or task.")],
    choices: Annotated[
        str | None,
        typer.Option("--choices", help="Comma-separated options for multiple choice."),
    ] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer PROMPT with every configured voice and fuse their votes."""
    inp: Any = prompt
    if choices is not None:
        inp = {"prompt": prompt, "choices": [c.strip() for c in choices.split(",") if c.strip()]}
    system = _system(config)
    if as_json:
        result = system.process(inp)
    else:
        with err.status("asking the voices…"):
            result = system.process(inp)
    _print_result(result, as_json)
    system.close()


def _read_input(value: str) -> Any:
    if value.startswith("@"):
        from ai_orchestration.config import read_text_file

        path = Path(value[1:])
        try:
            text = read_text_file(path, what="input file")
        except ConfigError as exc:
            raise InputError(exc.message) from None
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
    return value


@command
@one_line_errors
def run(
    workflow_file: Annotated[Path, typer.Argument(help="Workflow file (TOML or YAML).")],
    input: Annotated[
        str, typer.Option("--input", "-i", help="Input text, or @file (JSON or text).")
    ],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a workflow defined in WORKFLOW_FILE once on --input (at most run.max_input_chars
    characters; the workflow's timeout, else run.timeout's default). The run is recorded in
    the configured store (see ``runs list``)."""
    from ai_orchestration._limits import check_run_input
    from ai_orchestration.workflow_file import load_workflow

    flow, processors = load_workflow(workflow_file)
    cfg = _read_config(config)
    data = _read_input(input)
    check_run_input(data, max_chars=cfg.run.max_input_chars)
    timeout = flow.timeout if flow.timeout is not None else cfg.run.timeout
    with _recorder(cfg) as recorder, err.status(f"running {flow.name}…"):
        run_in = flow.run(data, processors=[*processors, recorder], timeout=timeout)
        result = asyncio.run(run_in)
    flush_processors(processors)  # the audit file is whole before it is shown
    trace_path = result.trace.path
    payload = {
        "run_id": result.run_id,
        "output": result.output,
        "usage": result.usage.to_dict(),
        "trace_path": str(trace_path) if trace_path else None,
    }
    if as_json:
        sys.stdout.write(orjson.dumps(payload, default=_jsonable).decode() + "\n")
    else:
        out.print(f"[bold]output[/]  {escape(str(_jsonable(result.output)))}", highlight=False)
        out.print(f"[bold]run id[/]  {result.run_id}")
        if trace_path:
            out.print(f"[bold]trace[/]   {escape(str(trace_path))}", highlight=False)


def _read_config(config: Path | None) -> Any:
    from ai_orchestration.config import read_config

    return read_config(config)[0]


@contextmanager
def _recorder(cfg: Any) -> Iterator[Any]:
    """A run recorder over the configured store; every row written (or its error raised)
    and the store closed on the way out, even when the run failed."""
    from ai_orchestration.store import open_store
    from ai_orchestration.store._recording import RunRecorder

    store = open_store(cfg.store_url(), Path(cfg.state_dir), redact_io=cfg.tracing.redact_io)
    recorder = RunRecorder(lambda: store)
    try:
        yield recorder
    finally:
        try:
            recorder.raise_failures()
        finally:
            recorder.close()
            store.close()


runs_app = typer.Typer(
    help="Recorded runs: every process and run, answered or failed.",
    no_args_is_help=True,
    cls=_Group,
)
app.add_typer(runs_app, name="runs")


@runs_app.command("list", cls=_Command)
@one_line_errors
def runs_list(
    config: ConfigOpt = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only this workflow's runs.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Runs per page.")] = 20,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Runs to skip.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """The recorded runs, newest first: run id, workflow, status, start and duration."""
    from ai_orchestration.store import open_store

    cfg = _read_config(config)
    store = open_store(cfg.store_url(), Path(cfg.state_dir))
    try:
        rows = [r.summary() for r in store.list_runs(limit=limit, offset=offset, workflow=workflow)]
    finally:
        store.close()
    if as_json:
        sys.stdout.write(orjson.dumps({"runs": rows}).decode() + "\n")
        return
    from rich.table import Table

    table = Table("run id", "workflow", "status", "started (UTC)", "duration s")
    for row in rows:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row["started"]))
        duration = "" if row["duration_s"] is None else f"{row['duration_s']:.3f}"
        table.add_row(row["run_id"], escape(row["workflow"]), row["status"], started, duration)
    out.print(table)


def _jsonable(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else str(value)


@command
@one_line_errors
def demo(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a few questions with the embedded default (real local models)."""
    from ai_orchestration._demo import run_demo

    run_demo(_system(config), out=out, err=err, as_json=as_json)


@command
@one_line_errors
def trace(
    path: Annotated[Path, typer.Argument(help="A run's JSONL audit file.")],
) -> None:
    """Show a run's trace as a tree."""
    from ai_orchestration.tracing.render import render_audit_file

    out.print(render_audit_file(path), highlight=False)


@command
@one_line_errors
def bench(
    names: Annotated[
        list[str] | None, typer.Argument(help="Benchmarks to run (default all).")
    ] = None,
) -> None:
    """Run the benchmarks (from a source checkout) and write benchmarks/results/*.json."""
    root = Path.cwd()
    if not (root / "benchmarks" / "__main__.py").exists():
        raise InputError("benchmarks live in the source checkout; run this from its root")
    cmd = [sys.executable, "-m", "benchmarks", *(names or [])]
    code = subprocess.call(cmd, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    if code:
        raise typer.Exit(code)


@command
@one_line_errors
def route(
    explain: Annotated[
        str, typer.Option("--explain", help="Input text, JSON object or @file to route.")
    ],
    config: ConfigOpt = None,
) -> None:
    """Show which routing rule would fire for an input, and why (calls no voice)."""
    from ai_orchestration.routing import Router

    if config is None:
        raise InputError("route needs --config FILE with a 'routing' section")
    _check_has_routing(config)
    value = _read_input(explain)
    if isinstance(value, str) and value.lstrip().startswith("{"):
        import contextlib

        with contextlib.suppress(orjson.JSONDecodeError):  # else: text starting with a brace
            value = orjson.loads(value)
    out.print(Router.from_file(config).explain(value), highlight=False)


def _check_has_routing(path: Path) -> None:
    """A config file without ``routing`` has nothing to explain (a file that is only a
    routing section is fine)."""
    from ai_orchestration.config import OrchestrationConfig, _parse_file
    from ai_orchestration.policies._routing_config import RoutingConfig

    if path.suffix.lower() == ".json":
        return  # a routing section on its own
    data, _ = _parse_file(path)
    config_only = set(OrchestrationConfig.model_fields) - set(RoutingConfig.model_fields)
    if "routing" not in data and (not data or set(data) & config_only):
        raise ConfigError(
            "has no routing section: nothing to explain (add [routing] rules)",
            file=str(path),
            field="routing",
        )


@command
@one_line_errors
def stats(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Per-voice latency, error and cost statistics from the configured store.

    Covers the last calls recorded per voice (circuits live in each running instance).
    """
    from ai_orchestration.config import read_config
    from ai_orchestration.stats import StatsRegistry
    from ai_orchestration.store import open_store
    from ai_orchestration.store._dsn import redact

    cfg = read_config(config)[0]
    url = cfg.store_url()
    source = str(Path(cfg.state_dir) / "state.sqlite3") if url == "sqlite" else redact(url)
    voice_stats = StatsRegistry()
    if url != "sqlite" or Path(source).exists():
        store = open_store(url, cfg.state_dir)
        try:
            voice_stats.warm(store.recent_calls(voice_stats.window))
        finally:
            store.close()
    if as_json:
        data = {
            "voices": {k: v.to_dict() for k, v in voice_stats.snapshot().items()},
            "source": source,
        }
        sys.stdout.write(orjson.dumps(data).decode() + "\n")
        return
    out.print(f"last {voice_stats.window} calls per voice recorded in {source}", highlight=False)
    out.print(voice_stats.format_table(), highlight=False)


def main() -> None:
    app()
