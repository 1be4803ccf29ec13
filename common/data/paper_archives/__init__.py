"""Readers of the ORIGINAL archives of the LanHAR paper's own data sets, one module per archive family.

Each reads into the same WindowSet as common/data/archives.py (20 Hz, 120-sample windows, acc m/s^2 incl.
gravity in the Android/UCI sign convention, gyro rad/s, users, one segment per continuous recording of one
activity) and cites the documentation its format knowledge comes from:

- hhar.py         hhar_phone, hhar_watch
- motionsense.py  motionsense
- shoaib.py       shoaib_leftpocket, shoaib_rightpocket, shoaib_wrist, shoaib_upperarm, shoaib_belt
- pamap2.py       pamap2_hand, pamap2_chest, pamap2_ankle

common/data/sources.py dispatches a folder to its reader.
"""
