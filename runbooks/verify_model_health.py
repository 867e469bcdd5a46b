"""Verify a model is healthy after a fix: its probe passes, and its champion's next judged window
of live metrics breaches nothing (or, with --probe-only, just the probe).

It waits up to --wait-seconds for a window of the current champion that began after the
verification started (so it holds no traffic from before the fix) and had enough labels to
judge; a window breaching a watched metric, a failed probe, or no such window in time all mean
the fix is not confirmed.

Exit codes:
  0  healthy: the probe passed and a fresh window breaches nothing
  1  unhealthy: the probe failed, or the fresh window breaches a watched metric
  2  bad arguments or environment
  3  no evidence: no judged window of the champion arrived in time
  4  a Vigil API refused or could not be reached
"""

from __future__ import annotations

import argparse
from typing import Any

from vigil_runbook import DONE, NOT_APPLICABLE, UNHEALTHY, api, fail, read_events, utc_now

from contracts import Envelope, MetricsComputed, Topic, Variant


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--wait-seconds", type=float, default=180.0)
    parser.add_argument("--skip-probe", action="store_true", help="models without a golden set")
    parser.add_argument(
        "--probe-only", action="store_true", help="check the probe, not the live metrics"
    )
    args = parser.parse_args()
    started = utc_now()

    with api("registry") as registry:
        deployment: dict[str, Any] = registry.get(f"/models/{args.model}/deployment")
    champion = deployment["champion"]["version"]
    print(f"{args.model}: champion v{champion} (revision {deployment['revision']})")

    if not args.skip_probe:
        with api("monitor") as monitor:
            probe = monitor.post(f"/probes/{args.model}")
        print(f"probe: {'passed' if probe['passed'] else 'FAILED'} (accuracy {probe['accuracy']})")
        if not probe["passed"]:
            fail(UNHEALTHY, f"probe failed: {probe.get('failure') or 'wrong answers'}")
        if args.probe_only:
            raise SystemExit(DONE)

    def fresh_window(event: Envelope) -> bool:
        return (
            isinstance(event, MetricsComputed)
            and event.model == args.model
            and event.model_version == champion
            and event.variant is Variant.CHAMPION
            and event.breaching is not None
            and event.window.start >= started  # wholly after the fix: no old traffic in it
        )

    windows = read_events(
        Topic.METRICS, fresh_window, until=lambda found: bool(found), timeout_s=args.wait_seconds
    )
    if not windows:
        fail(
            NOT_APPLICABLE,
            f"no judged window of v{champion} within {args.wait_seconds:.0f} s: not confirmed",
        )
    window = windows[0]
    assert isinstance(window, MetricsComputed)
    figures = ", ".join(f"{k} {v:.3f}" for k, v in sorted(window.metrics.items()) if v is not None)
    print(f"window of {window.labelled} labels: {figures}")
    if window.breaching:
        fail(UNHEALTHY, f"v{champion} still breaches {', '.join(window.breaching)}")
    print(f"v{champion} healthy")
    raise SystemExit(DONE)


if __name__ == "__main__":
    main()
