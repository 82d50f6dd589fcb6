"""Bidirectional RL of the policy (the ``train`` stage): composite batches, rewards, advantages, loss, loop."""
