"""ai-orchestration: many AI models, one answer."""
