"""Roll a model back one step because its metrics fell right after a deployment, but only while
the version the alert was about still serves.

One step means: withdraw the challenger if one takes traffic (the canary is the suspect), else
put the previous champion back. --version names the version the incident is about; the rollback
acts only if that version is the one it takes out of service, and only on the deployment revision
it judged: the registry applies it as a compare-and-set (409 if another revision came into force
meanwhile), and the script then judges the new deployment. So a rollback queued behind a fix
never rolls the fix back. It refuses when the model's last deployment change is older than
--max-age-minutes: a decay that long after a deployment is not the deployment's doing, and
rolling back would only hide it.

Exit codes:
  0  rolled back
  2  bad arguments or environment
  3  not applicable: no recent deployment, nothing to roll back to, or the version still serves
     but a rollback would take out another one
  4  the registry refused or could not be reached
  5  nothing to do: the version no longer serves (the deployment changed since the alert)
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime, timedelta
from typing import Any

from vigil_runbook import (
    API_ERROR,
    DONE,
    NOT_APPLICABLE,
    NOTHING_TO_DO,
    ApiError,
    api,
    fail,
    utc_now,
)

_ATTEMPTS = 3


def _version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a version number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a version number is at least 1, not {value}")
    return value


def _served(deployment: dict[str, Any], role: str) -> int | None:
    served = deployment.get(role)
    return int(served["version"]) if served else None


def _describe(revision: dict[str, Any]) -> str:
    deployment = revision["deployment"]
    champion = _served(deployment, "champion")
    challenger = _served(deployment, "challenger")
    serving = f"champion v{champion}" if champion is not None else "nothing"
    if challenger is not None:
        share = float(deployment.get("challenger_share", 0.0))
        serving += f", challenger v{challenger} ({deployment.get('mode')}, {share:.0%})"
    return f"{serving}, revision {revision['revision']}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", required=True, type=_version, help="version alerted on")
    parser.add_argument("--incident", required=True, help="incident id, recorded with the change")
    parser.add_argument("--max-age-minutes", type=float, default=120.0)
    args = parser.parse_args()

    with api("registry") as registry:
        refused: tuple[int, ApiError] | None = None
        for _ in range(_ATTEMPTS):
            revisions = registry.get(f"/models/{args.model}/history")["revisions"]
            if not revisions:
                fail(NOT_APPLICABLE, f"{args.model} was never deployed: nothing to roll back")
            latest = revisions[-1]
            if refused is not None and refused[0] == latest["revision"]:
                # The deployment did not change: the 409 was one of the registry's rules.
                fail(NOT_APPLICABLE, f"{args.model}: {refused[1]}")
            deployment = latest["deployment"]
            champion = _served(deployment, "champion")
            challenger = _served(deployment, "challenger")
            if args.version not in (champion, challenger):
                fail(
                    NOTHING_TO_DO,
                    f"nothing to do: version {args.version} of {args.model} no longer serves "
                    f"(now {_describe(latest)})",
                )
            withdrawn = challenger if challenger is not None else champion
            if withdrawn != args.version:
                fail(
                    NOT_APPLICABLE,
                    f"{args.model} v{args.version} serves as champion, but a rollback would "
                    f"withdraw challenger v{withdrawn}, not it ({_describe(latest)})",
                )
            age = utc_now() - datetime.fromisoformat(latest["at"])
            if age > timedelta(minutes=args.max_age_minutes):
                fail(
                    NOT_APPLICABLE,
                    f"{args.model}'s last deployment change (revision {latest['revision']}, "
                    f"{latest['action']}) is {age.total_seconds() / 60:.0f} min old: "
                    "not a fresh deployment, so a rollback is not the fix",
                )
            try:
                result = registry.post(
                    f"/models/{args.model}/deployment/rollback",
                    {
                        "reason": f"runbook rollback-model, run "
                        f"{os.environ.get('VIGIL_RUN_ID', '-')}: metrics of v{args.version} fell "
                        f"right after revision {latest['revision']} "
                        f"({age.total_seconds() / 60:.0f} min old)",
                        "incident_id": args.incident,
                        "expected_revision": latest["revision"],
                    },
                )
                break
            except ApiError as error:
                if error.status != 409:
                    raise
                refused = (latest["revision"], error)
        else:
            fail(API_ERROR, f"{args.model}'s deployment kept changing: gave up after {_ATTEMPTS}")
    served = result["deployment"]
    now_champion = served["champion"]["version"] if served.get("champion") else None
    print(
        f"rolled back {args.model}: revision {result['revision']} serves champion v{now_champion}"
        + (f" (challenger v{challenger} withdrawn)" if challenger is not None else "")
    )
    print(json.dumps(result, indent=2))
    raise SystemExit(DONE)


if __name__ == "__main__":
    main()
