"""Check and recover a scorer that fails its probe for a model.

The usual causes a script can fix: the scorer serves an older deployment than the registry's (it
missed a `models` event, or could not load the version at the time). It makes the scorer catch up
with the registry and checks that it now serves the registry's revision. A scorer that does not
answer at all is a process problem: the supervisor restarts it, and this script says so.

Exit codes:
  0  the scorer answers and serves the registry's current deployment of the model
  1  the scorer still serves something else after catching up
  2  bad arguments or environment
  3  the scorer does not answer
  4  the registry refused or could not be reached
"""

from __future__ import annotations

import argparse

from vigil_runbook import DONE, NOT_APPLICABLE, UNHEALTHY, ApiError, api, fail


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True)
    args = parser.parse_args()

    with api("registry") as registry:
        wanted = registry.get(f"/models/{args.model}/deployment")
    print(f"registry: {args.model} revision {wanted['revision']}")

    with api("scorer") as scorer:
        try:
            serving = scorer.get("/deployments")
        except ApiError as error:
            fail(
                NOT_APPLICABLE, f"the scorer does not answer ({error}); its supervisor restarts it"
            )
        held = serving.get(args.model)
        print(f"scorer: {args.model} revision {held['revision'] if held else 'none'}")
        if held is None or held["revision"] < wanted["revision"]:
            print("scorer is behind the registry: asking it to catch up")
            held = scorer.post("/deployments/sync").get(args.model)
    if held is None or held["revision"] != wanted["revision"]:
        fail(
            UNHEALTHY,
            f"scorer serves revision {held['revision'] if held else 'none'}, "
            f"the registry revision {wanted['revision']}",
        )
    print(f"scorer serves revision {held['revision']}, as the registry says")
    raise SystemExit(DONE)


if __name__ == "__main__":
    main()
