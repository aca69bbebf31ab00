"""What the safety decision reports: one `Event` per thing that happened in a step.

`SafetyController.step()` returns them in `Decision.events`; the daemon journals and logs
them, the simulator writes them as JSON lines and the timeline turns those into sentences.
An event is a `(kind, fields)` pair: `kind` an `EventKind` (a str enum whose values are the
names in the JSON lines and logs), `fields` the event's data, the same keys every time:

  session_started     skin_c, distance_mm
  session_ended       reason, on_s, elapsed_s, max_skin_c, min_distance_mm, the light fields
                      (min/max_signal_mcps, min/max_ambient_mcps), distance_samples, distance_doubts,
                      the counters (dose_cem43, switches, doubt_switches)
  paused              reason
  resumed             paused_s
  start_refused       reason
  fault               code, detail
  fault_acknowledged  codes
  ambient_high        ambient_mcps, warn_mcps, doubt_mcps, doubt_share
  skin_warning        on
  cooling             skin_c, comfort_c   (SR-14: the lamp went off at the comfort set point)
  cooled              skin_c, off_s       (the servo lets the lamp on again)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple


class EventKind(StrEnum):
    SESSION_STARTED = "session_started"
    SESSION_ENDED = "session_ended"
    PAUSED = "paused"
    RESUMED = "resumed"
    START_REFUSED = "start_refused"
    FAULT = "fault"
    FAULT_ACKNOWLEDGED = "fault_acknowledged"
    AMBIENT_HIGH = "ambient_high"
    SKIN_WARNING = "skin_warning"
    COOLING = "cooling"
    COOLED = "cooled"


class Event(NamedTuple):
    kind: EventKind
    fields: dict[str, Any]
