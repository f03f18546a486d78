"""The trainctl stack in CDK. Importing the package first lists the running Node in jsii's end-of-life switch, so
that whatever imports the CDK through it (app.py, the tests, the benchmarks, `make workflows`) starts quiet."""

import os

from infra.node_banner import silence_node_end_of_life

silence_node_end_of_life(os.environ)
