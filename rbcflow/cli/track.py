"""``rbcflow track``: placeholder until the front end lands (issue 2)."""
