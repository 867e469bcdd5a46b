"""The live status view of ``vigil up``: one row per service."""

from __future__ import annotations

from rich.table import Table

from services.stack.deadman import HeartbeatReport
from services.stack.supervisor import ChildState, ChildStatus

__all__ = ["status_table"]

_STYLE = {
    ChildState.READY: "green",
    ChildState.UNREADY: "red",
    ChildState.STARTING: "yellow",
    ChildState.RESTARTING: "red",
    ChildState.STOPPING: "yellow",
    ChildState.STOPPED: "dim",
}


def status_table(
    rows: list[ChildStatus],
    *,
    bootstrap_servers: str,
    state_dir: str,
    heartbeat: HeartbeatReport | None = None,
    watch_url: str | None = None,
) -> Table:
    """Render the services' states as a table, with the dead man's switch under it (in bold
    red when heartbeats stopped)."""
    caption = "Ctrl-C stops everything cleanly"
    if watch_url is not None:
        caption = f"watch endpoint {watch_url}/deadman — {caption}"
    if heartbeat is not None:
        style = "green" if heartbeat.state.value == "beating" else "yellow"
        if not heartbeat.ok:
            style = "bold white on red"
        caption = f"[{style}]{heartbeat.describe()}[/]\n{caption}"
    table = Table(
        title=f"Vigil — broker {bootstrap_servers} — state in {state_dir}", caption=caption
    )
    for column in ("service", "state", "pid", "url", "restarts", "up", "unready", "last exit"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name,
            f"[{_STYLE[row.state]}]{row.state.value}[/]",
            str(row.pid or "-"),
            f"http://127.0.0.1:{row.port}",
            str(row.restarts),
            _duration(row.uptime_s),
            _duration(row.unready_s),
            "-" if row.last_exit is None else str(row.last_exit),
        )
    return table


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{rest:02d}"
