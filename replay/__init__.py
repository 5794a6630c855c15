"""Replay CSV rows as open-loop HTTP traffic against a model API (`replay --help`)."""
