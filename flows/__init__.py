"""logisync flows."""
