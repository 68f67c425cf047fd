"""The only package that speaks HTTP to the cloud (real Huawei Cloud or the simulator)."""
