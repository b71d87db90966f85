"""What clients and the endpoint agree on beyond the request body."""

# A deployment's smoke test sends this header, so the endpoint answers without capturing:
# the same few rows, repeated, would otherwise read as drift to monitoring.
SMOKE_TEST_HEADER = "X-Penguins-Smoke-Test"
