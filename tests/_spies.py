"""Spies on the ops' kernels, for tests that check which path computed a result."""


def spy_bound_calls(monkeypatch, module, name: str, note) -> list:
    """Wrap `module.name`, a function that binds a kernel to its constant arguments and returns its `call`
    (`direct.pooled_tiles`, `winograd_pool.pooled_tiles`), so that each call of a bound kernel appends
    `note(binding arguments)` to the list returned (one per thread of a parallel region)."""
    seen = []
    original = getattr(module, name)

    def bind(*args):
        call = original(*args)
        return lambda *call_args: seen.append(note(args)) or call(*call_args)
    monkeypatch.setattr(module, name, bind)
    return seen
