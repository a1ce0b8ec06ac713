"""Training-time memorisation mitigations, usable with any PEFT method; one module each.

MITIGATIONS maps train.mitigation names to modules defining `MITIGATION` (a
memctl.train.hooks.Mitigation), imported only when used; "none" is the base class, which
changes nothing. A new mitigation is one module plus its line here.
"""

from __future__ import annotations

MITIGATIONS: dict[str, str] = {
    "rwa": "memctl.train.mitigations.rwa",
    "threshold": "memctl.train.mitigations.threshold",
}
