"""Feature extractors (text / audio / visual) behind one interface."""
