"""Readers of the ORIGINAL archives of the LanHAR paper's own data sets: hhar.py, motionsense.py, shoaib.py
and pamap2.py (their data set names: common/data/sources.py ARCHIVE_DATA_SETS, which also dispatches a folder
to its reader). Each reads into the same WindowSet as common/data/archives.py (20 Hz, 120-sample windows,
acc m/s^2 incl. gravity in the Android/UCI sign convention, gyro rad/s, one segment per continuous recording
of one activity) and cites the documentation its format knowledge comes from.
"""
