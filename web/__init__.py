"""Visibility: the query layer, the built-in web page and its JSON API, Prometheus metrics."""
