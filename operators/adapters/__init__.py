"""Raw format adapters: raw bytes -> canonical events, a dead letter, or an ignore."""
