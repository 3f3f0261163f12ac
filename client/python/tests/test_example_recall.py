"""examples/recall.py: the Memorizing Transformer trained from Python through
the server answers far questions from memory, and is near chance without."""
import importlib.util
import pathlib

import pytest

torch = pytest.importorskip("torch")

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "recall.py"


@pytest.mark.timeout(240)
def test_memory_answers_beyond_the_window_and_nothing_else_can(server):
    spec = importlib.util.spec_from_file_location("recall_example", EXAMPLE)
    recall = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recall)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the server has the other core
    try:
        r = recall.run(server.address, steps=1000, seed=11)
    finally:
        torch.set_num_threads(threads)
    print(f"trained {r['steps']} steps in {r['seconds']:.1f} s; far answers "
          f"{r['far_with_memory']:.3f} with memory, {r['far_without_memory']:.3f} without; "
          f"near {r['near_without_memory']:.3f}")
    assert r["far_with_memory"] >= 0.9
    assert r["far_without_memory"] <= 0.2  # chance: 1/10 and 1/26
    assert r["near_without_memory"] >= 0.9  # the window alone answers these
