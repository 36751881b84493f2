"""The secrets API: write-only values, readable metadata."""
