"""Speed benchmarks: they print figures and never assert."""
