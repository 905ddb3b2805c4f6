"""Tuning: the database (what it is for, whether a run may apply it) and the MetaSchedule search
that fills it (`gptbench tune`, `run --tune-budget`)."""
