"""A per-process cache of item availability answers, invalidated across the workers of
one host through shared slot versions (decision 0039)."""
