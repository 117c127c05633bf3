"""Test tools that stand in for the outside world (a misbehaving RPC provider), never for our code."""
