"""``python -m ai_orchestration`` runs the CLI."""

from ai_orchestration.cli import main

main()
