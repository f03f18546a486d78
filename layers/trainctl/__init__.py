"""trainctl: a guardrail for machine-learning training on AWS."""

__version__ = "0.1.0"
