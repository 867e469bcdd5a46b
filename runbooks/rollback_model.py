"""Roll a model back one step because its metrics fell right after a deployment.

One step means: withdraw the challenger if one takes traffic (the canary is the suspect), else
put the previous champion back. It refuses when the model's last deployment change is older than
--max-age-minutes: a decay that long after a deployment is not the deployment's doing, and
rolling back would only hide it.

Exit codes:
  0  rolled back
  2  bad arguments or environment
  3  not applicable: no recent deployment, or nothing to roll back to
  4  the registry refused or could not be reached
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timedelta

from vigil_runbook import DONE, NOT_APPLICABLE, ApiError, api, fail, utc_now


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--incident", required=True, help="incident id, recorded with the change")
    parser.add_argument("--max-age-minutes", type=float, default=120.0)
    args = parser.parse_args()

    with api("registry") as registry:
        history = registry.get(f"/models/{args.model}/history")
        revisions = history["revisions"]
        if not revisions:
            fail(NOT_APPLICABLE, f"{args.model} was never deployed: nothing to roll back")
        latest = revisions[-1]
        age = utc_now() - datetime.fromisoformat(latest["at"])
        if age > timedelta(minutes=args.max_age_minutes):
            fail(
                NOT_APPLICABLE,
                f"{args.model}'s last deployment change (revision {latest['revision']}, "
                f"{latest['action']}) is {age.total_seconds() / 60:.0f} min old: "
                "not a fresh deployment, so a rollback is not the fix",
            )
        deployment = latest["deployment"]
        try:
            result = registry.post(
                f"/models/{args.model}/deployment/rollback",
                {
                    "reason": f"runbook rollback-model, run {os.environ.get('VIGIL_RUN_ID', '-')}: "
                    f"metrics fell right after revision {latest['revision']} "
                    f"({age.total_seconds() / 60:.0f} min old)",
                    "incident_id": args.incident,
                },
            )
        except ApiError as error:
            if error.status == 409:  # the registry's rules: nothing to roll back to
                fail(NOT_APPLICABLE, f"{args.model}: {error}")
            raise
    served = result["deployment"]
    champion = served["champion"]["version"] if served.get("champion") else None
    print(
        f"rolled back {args.model}: revision {result['revision']} serves champion v{champion}"
        + (" (challenger withdrawn)" if deployment.get("challenger") else "")
    )
    print(json.dumps(result, indent=2))
    raise SystemExit(DONE)


if __name__ == "__main__":
    main()
