"""A smaller run of bench/load.py: concurrent workers over HTTP against `make run`'s stack."""
from bench.load import report, run_load
from tests.e2e.stack_process import local_stack_process


def test_concurrent_workers_never_double_lease_overfill_lose_answers_or_overspend(tmp_path):
    with local_stack_process(tmp_path) as stack:
        result = run_load(stack.info["base_url"], stack.info["client_key"], items=60, workers=12,
                          redundancy=3, timeout=240)
    print(report(result))
    assert result.judgments == 180 and not result.errors
    assert result.double_leases == result.over_redundancy == result.lost_answers == 0
    assert result.spent_cents == 180 * 5 <= result.budget_cents
    assert result.latencies["lease"] and result.latencies["submit"]
