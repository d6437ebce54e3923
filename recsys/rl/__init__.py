"""Reinforcement learning over cases: Q network, policy, losses, replay, learner, credit."""
