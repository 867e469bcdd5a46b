"""Ask for a retrain of an incident's model (a level-two action), and see it start.

The incident log publishes the request (one per incident: repeated requests merge), and puts it
on the incident's timeline. The request is made for the person who ran the runbook
(VIGIL_ON_BEHALF_OF, set by the runner), who is then a requester of the retrain and may not
approve its candidate. The verification waits for the retrainer to start the run.

Exit codes:
  0  requested (the verification: the retrainer started a run for this incident)
  2  bad arguments or environment
  3  the retrainer did not start a run in time
  4  the incident log refused or could not be reached
"""

from __future__ import annotations

import argparse
import os

from vigil_runbook import DONE, NOT_APPLICABLE, api, fail, read_events

from contracts import Envelope, RetrainStarted, Topic


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--incident", required=True)
    parser.add_argument("--reason", default="requested by runbook")
    parser.add_argument(
        "--wait-started",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="instead of requesting, wait this long for the retrainer to start the run",
    )
    args = parser.parse_args()

    if args.wait_started:

        def started(event: Envelope) -> bool:
            return isinstance(event, RetrainStarted) and event.incident_id == args.incident

        runs = read_events(Topic.MODELS, started, until=bool, timeout_s=args.wait_started)
        if not runs:
            fail(NOT_APPLICABLE, f"no retrain started for {args.incident} in {args.wait_started} s")
        run = runs[0]
        assert isinstance(run, RetrainStarted)
        print(f"retrain {run.run_id} started on dataset {run.dataset.version}")
        raise SystemExit(DONE)

    # The retrain is asked for the person who ran this runbook (the runner says who), so that
    # person cannot approve the candidate it produces.
    body = {"reason": args.reason}
    on_behalf_of = os.environ.get("VIGIL_ON_BEHALF_OF")
    if on_behalf_of:
        body["on_behalf_of"] = on_behalf_of
    with api("incident-log") as incidents:
        incident = incidents.post(f"/incidents/{args.incident}/retrain", body)
    asker = f" on behalf of {on_behalf_of}" if on_behalf_of else ""
    print(f"retrain requested for {incident['model']} ({args.incident}){asker}")
    raise SystemExit(DONE)


if __name__ == "__main__":
    main()
