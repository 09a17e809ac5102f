"""logisync sinks."""
