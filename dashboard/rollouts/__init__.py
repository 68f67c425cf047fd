"""Rollouts: plan (planning.py), drive (engine.py, waves.py), send (submit.py), track
(refresh.py), and the operator's controls (control.py).

A rollout is data, not a process: the Rollout and its RolloutServer rows are written before
any API call, and every state change is a conditional UPDATE on the row's state, so any
worker can pick up where another stopped.
"""
