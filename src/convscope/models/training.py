"""`Model`: compile, fit, evaluate and the training loop (issue 3 fills this in)."""


class Model:
    """Base of `Sequential`; the training API lives here."""
