"""The Fraud Detection Handbook benchmark (``python -m benchmarks.fraud_handbook``): the handbook's
data and split (:mod:`.data`), its peers and our models' runs (:mod:`.runs`, :mod:`.semi`,
:mod:`.steps`) and the report (:mod:`.report`); the protocol is in :mod:`.__main__`."""
