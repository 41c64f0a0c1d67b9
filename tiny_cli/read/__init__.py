"""Reading a net: canonical form, formula, diagnosis, comparison, solutions of a sweep."""
