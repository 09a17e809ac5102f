"""The built-in simulator: a coherent, seeded scenario of deliveries in every raw format."""
