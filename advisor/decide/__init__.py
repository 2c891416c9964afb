"""Deciding: enumerate deployments, gate them, score them on the physics, pick, explain."""
