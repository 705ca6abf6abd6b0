"""The README's quick start, runnable offline on the embedded local voices."""

from ai_orchestration import AiOrchestration

with AiOrchestration() as system:
    result = system.process(
        {
            "prompt": "Which planet is known as the Red Planet?",
            "choices": ["Venus", "Mars", "Jupiter"],
        }
    )
    print(result.answer, f"{result.confidence:.3f}", result.run_id)
    weights = result.consensus.weights
    for vote in result.votes:
        print(f"  {vote.voice:14} {vote.answer!s:8} weight {weights.get(vote.voice, 0):.3f}")
    print("trace:", result.trace_path)
    system.feedback(result.run_id, "Mars")
