"""A sweep from start to end: its options, its saved record, Ray, the run, the result."""
