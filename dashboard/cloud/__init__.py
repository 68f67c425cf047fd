"""The only package that speaks HTTP to the cloud (real Huawei Cloud or the simulator).

Callers use `get_client()` (or build a `CloudClient` from a `CloudConfig`) and get typed
records back; every failure is a `CloudError` whose `outcome` says whether it took effect.
"""
