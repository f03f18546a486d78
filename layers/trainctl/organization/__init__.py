"""An AWS Organization from the hub: which account-regions are covered, spoke credentials, one child's sweep."""
