"""Socket ingest from lclstreamer: message decoding, receivers, and a sender for tests and load."""
