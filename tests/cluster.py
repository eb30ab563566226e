"""Helpers for multi-process cluster tests: real `chatd serve` processes on
loopback, a failover-aware load generator, and convergence checks. They live
in chatd.tools.localcluster, which the benchmarks and the demo use too."""

from chatd.tools.localcluster import Cluster as Cluster
from chatd.tools.localcluster import Load as Load
from chatd.tools.localcluster import check_no_loss as check_no_loss
from chatd.tools.localcluster import history as history
