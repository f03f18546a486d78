"""Lyceum Cloud beside AWS: an HTTP client, reads of VMs and runs into the resource model, and the actions.

Lyceum has no tags: scope is a name prefix or an explicit id list, the owner is read from the name by a pattern
the team sets, and marks live in the ledger. Nothing here is imported by an AWS handler's path.
"""
