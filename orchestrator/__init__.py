"""cws-workload: provision workloads through the CWS instance API."""
