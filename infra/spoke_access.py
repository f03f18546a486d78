"""What the spot and age_guard functions' code declares for events a member account forwards, and who grants it.

Their handlers reach a member's spoke role only for an event of another account, and only where an organization is
covered: the Organization construct grants sts:AssumeRole on the spoke role alone, within the organization; every
deployment withholds it from their own grants, each with the reason.
"""

from __future__ import annotations

SPOKE_ACCESS_WITHHELD = {
    "sts:AssumeRole": "granted by the Organization construct on the spoke role only, where an organization is covered",
    # AWS STS API Reference, GetCallerIdentity: "No permissions are required to perform this operation."
    "sts:GetCallerIdentity": "needs no permission: STS answers it for any credentials",
}
