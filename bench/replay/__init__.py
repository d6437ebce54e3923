"""Offline replay comparisons: the fitted policy against in-process baselines and RecBole peers."""
