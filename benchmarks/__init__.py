"""On-demand measurements of the two backends (not part of the test suite)."""
