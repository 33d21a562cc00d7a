"""Not product: the fake Bot API and the demo that drives it."""
