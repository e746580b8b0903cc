"""Ordered path lists in tests (an op's `(name, applies, run)` entries, the first that applies runs):
record which entries were asked and what they answered, and check that a path which cannot run under a
parameter (the NumPy kernels, no SIMD) declined and another one ran, instead of skipping the case."""


def recording(entries, asked: list) -> tuple:
    """`entries` with each `applies` appending (name, its answer) to `asked`."""
    def wrap(name, applies):
        def recorded(*args):
            answer = applies(*args)
            asked.append((name, answer))
            return answer
        return recorded
    return tuple((name, wrap(name, applies), run) for name, applies, run in entries)


def assert_declined(asked: list, name: str) -> None:
    """`name` was asked and declined each time, and the last entry asked accepted."""
    assert any(entry == name for entry, _ in asked), asked
    assert all(answer is False for entry, answer in asked if entry == name), asked
    assert asked[-1][1] is True, asked
