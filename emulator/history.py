"""Reading execution histories: which events belong to which iteration of an inline Map.

An inline Map's iterations interleave in their execution's history (ParallelUsers run at once); each event names
the event before it in its own chain (``previousEventId``), so following the chains from each
``MapIterationStarted`` attributes every event to its iteration. The CLI's timeline and the benchmark read
histories this way.
"""

from __future__ import annotations


_ENDS = ("MapIterationSucceeded", "MapIterationFailed", "MapIterationAborted")


def iterations(events: list[dict]) -> dict[int, list[dict]]:
    """Each iteration of the history's outermost inline Map: its events by its index (its item's position), in
    order. A Map nested inside an iteration stays that iteration's."""
    index_of: dict[int, int] = {}
    outer = None  # the outermost Map's name: its first iteration starts before any nested one
    found: dict[int, list[dict]] = {}
    for event in sorted(events, key=lambda e: e["id"]):
        current = index_of.get(event.get("previousEventId"))
        details = next((v for k, v in event.items() if k.endswith("EventDetails") and isinstance(v, dict)), {})
        if event["type"] == "MapIterationStarted" and (current is None or details.get("name") == outer):
            outer = outer or details.get("name")
            current = details["index"]
            found[current] = []
        if current is None:
            continue
        found[current].append(event)
        if not (event["type"] in _ENDS and details.get("name") == outer):
            index_of[event["id"]] = current  # a worker starts its next iteration from the last one's end
    return found


def states_entered(events: list[dict], choices: bool = True) -> list[str]:
    """The names of the states these events entered, in order; ``choices=False`` leaves Choice states out."""
    return [
        e["stateEnteredEventDetails"]["name"]
        for e in events
        if "stateEnteredEventDetails" in e and (choices or e["type"] != "ChoiceStateEntered")
    ]
