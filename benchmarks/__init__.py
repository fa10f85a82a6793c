"""Side-by-side measurements of seqemb against its peers on the public data sets in ../shared/data.

Run each from the repository root as ``python -m benchmarks.NAME --out results/NAME.json``; every
JSON result carries the envelope of :mod:`benchmarks._common` (commit, versions, CPU, threads,
load, wall time).
"""
