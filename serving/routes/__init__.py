"""Thin `/v1` routes: schema in, one service call, schema out."""
