"""Process-level settings: the contention warning."""

from bigbigan.runtime import contention_hint


def test_contention_hint_only_when_busy_and_multithreaded():
    assert contention_hint(load=0.3, cores=2, threads=2) is None  # idle machine
    assert contention_hint(load=7.0, cores=2, threads=1) is None  # one thread: nothing to stall
    assert contention_hint(load=1.9, cores=2, threads=2) is None
    hint = contention_hint(load=7.2, cores=2, threads=2)
    assert hint.startswith("bigbigan: warning: load average 7.2 on 2 cores")
    assert "OMP_NUM_THREADS=1" in hint and "\n" not in hint
