"""An embedded Huawei Cloud: WorkspaceApp, IMS, Workspace image lists and IAM on loopback.

It powers the local demo, the tests and the benchmarks. See docs/simulator.md.
"""
