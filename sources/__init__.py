"""logisync sources."""
