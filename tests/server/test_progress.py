"""Progress of long command-line work: a bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from server.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with Progress("import", 3, stream=stream) as progress:
        progress.advance("customers")
        progress.advance("orders", 2)
    assert stream.getvalue().splitlines() == ["import: customers (1/3)", "import: orders (3/3)"]
    assert progress.done == 3


def test_a_bar_on_a_terminal() -> None:
    stream = Terminal()
    with Progress("rebuild", 4, stream=stream) as progress:
        progress.advance("segments")
        progress.advance("clv", 3)
    shown = stream.getvalue()
    assert "rebuild" in shown and "100%" in shown and "clv" in shown
    # A bar redraws in place: no per-step lines.
    assert "(1/4)" not in shown


def test_steps_never_run_past_the_total() -> None:
    stream = io.StringIO()
    progress = Progress("x", 1, stream=stream)
    progress.advance("a")
    progress.advance("b")
    assert progress.done == 1


def test_a_note_says_what_the_step_under_way_does_without_counting_it() -> None:
    stream = io.StringIO()
    with Progress("demo-data", 2, stream=stream) as progress:
        progress.advance("catalogue")
        progress.note("loyalty: ledger")
        progress.advance("loyalty")
    assert stream.getvalue().splitlines() == [
        "demo-data: catalogue (1/2)",
        "demo-data: loyalty: ledger (1/2)",
        "demo-data: loyalty (2/2)",
    ]
    terminal = Terminal()
    with Progress("demo-data", 2, stream=terminal) as progress:
        progress.note("loyalty: ledger")
        assert progress.done == 0
    assert "loyalty: ledger" in terminal.getvalue()
