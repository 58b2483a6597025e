"""Many ranks: one report for a whole distributed job (`traceparse analyze` of several traces).

inputs.py   which files are the job's rank traces (folders, globs, cycles, mixed jobs refused)
summary.py  one rank's compact summary, computed where its trace is read (the map)
report.py   the job report from the summaries (the reduce), `traceparse.job/1`
run.py      the map on local processes or a Dask cluster, then the reduce
render.py   text, Markdown, JSON
"""

from __future__ import annotations

from traceparse.job.report import JobReport
from traceparse.job.run import analyze_job

__all__ = ["JobReport", "analyze_job"]
